//! The application: its shared state, its router and how it is served.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;

use crate::admin_session::AdminSessions;
use crate::auth::Keys;
use crate::blacklist::Blacklist;
use crate::config::{Secrets, Settings};
use crate::db::Db;
use crate::error::ApiError;
use crate::orders::Orders;
use crate::routes;
use crate::store::Store;
use crate::worker::{Worker, WorkerConfig};

/// Largest request body accepted; anything bigger is `bad_request`.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub keys: Arc<Keys>,
    /// Admin sessions: login, verification, revocation.
    pub admin: AdminSessions,
    pub store: Store,
    /// Purchases go to Redis through here, batched per activity.
    pub purchases: crate::purchase_batch::PurchaseBatcher,
    pub orders: Orders,
    pub blacklist: Blacklist,
    pub live: crate::live::LiveStats,
    /// The admin UI's built files, if there are any.
    pub ui: Option<Arc<crate::routes::ui::UiAssets>>,
}

impl AppState {
    /// Connects to Redis and the order database (running its migrations).
    pub async fn new(settings: Settings, secrets: &Secrets) -> anyhow::Result<Self> {
        let store = Store::connect(&settings.redis_url, settings.redis_timeout()).await?;
        let db = Db::connect(&settings.database_url).await?;
        let keys = Keys::new(&secrets.jwt, &secrets.edge);
        let admin = AdminSessions::new(store.clone(), &secrets.admin_password);
        let settings_ui_dir = settings.admin_ui_dir.clone();
        let purchases = crate::purchase_batch::PurchaseBatcher::new(store.clone(), settings.pay_timeout_secs * 1000);
        Ok(Self {
            settings: Arc::new(settings),
            keys: Arc::new(keys),
            admin,
            orders: Orders { store: store.clone(), db },
            purchases,
            store,
            blacklist: Blacklist::default(),
            live: crate::live::LiveStats::default(),
            ui: crate::routes::ui::UiAssets::load(&settings_ui_dir),
        })
    }

    /// Starts the background work of this process's role: the blacklist
    /// refresher and script loading for the API; the order worker, the expiry
    /// sweeper and the reconciler for the worker.
    pub async fn start_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        if self.settings.role.runs_worker() {
            let config = WorkerConfig { claim_idle_ms: self.settings.claim_idle_ms, ..WorkerConfig::default() };
            let worker =
                Worker::new(self.store.clone(), self.orders.db.clone(), Worker::default_consumer_name(), config);
            tasks.push(worker.spawn());
            let sweep = std::time::Duration::from_millis(self.settings.sweep_interval_ms);
            tasks.push(crate::worker::spawn_sweeper(self.orders.clone(), sweep));
            let every = std::time::Duration::from_secs(self.settings.reconcile_interval_secs);
            tasks.push(crate::reconcile::spawn_reconciler(self.orders.clone(), every));
        }
        if !self.settings.role.serves_http() {
            return tasks;
        }
        if let Err(e) = self.blacklist.refresh(&self.store, true).await {
            tracing::warn!(error = %e, "initial blacklist load failed; will retry");
        }
        if let Err(e) = self.store.load_scripts().await {
            tracing::warn!(error = %e, "loading scripts failed; they load on first use");
        }
        tasks.push(self.blacklist.spawn_refresher(self.store.clone()));
        tasks.push(crate::edge::spawn_rules_publisher(
            self.store.clone(),
            self.orders.db.clone(),
            std::time::Duration::from_secs(5),
        ));
        tasks
    }
}

/// The whole HTTP surface of the backend.
pub fn router(state: AppState) -> Router {
    crate::telemetry::prometheus();
    Router::new()
        .merge(routes::public::router())
        .merge(routes::orders::router())
        .merge(routes::edge::router())
        .merge(routes::dashboard::router())
        .merge(routes::ui::router())
        .merge(routes::admin::router())
        .merge(routes::dead_letters::router())
        .merge(routes::health::router())
        .fallback(|| async { ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(crate::telemetry::track_latency))
        .with_state(state)
}

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
