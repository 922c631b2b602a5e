//! Serving the backend's router on a listener, until shutdown.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::routes::router;
use crate::state::AppState;

/// Serves the router on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // Answers are small and written whole: Nagle's algorithm would only hold
    // one back until the client acknowledges the previous one.
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY on an accepted connection: {e}");
        }
    });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
