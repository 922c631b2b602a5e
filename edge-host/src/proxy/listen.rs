//! The public listening sockets: one per worker and address, all bound to the
//! same port with `SO_REUSEPORT` (nginx's `reuseport`, Envoy's per-worker
//! listeners). The kernel spreads new connections over the workers' sockets
//! and wakes only the worker whose socket got one, so a connection is
//! accepted, parsed, filtered, forwarded and answered on one thread; a shared
//! accept thread handing connections over would cross threads and wake two.
//!
//! Like nginx's `reuseport`, a second process of the same user may bind the
//! same port with `SO_REUSEPORT` too and would then share its connections;
//! a socket bound without it (any other program) still fails our bind.

use anyhow::Context as _;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{SocketAddr, TcpListener};

/// Pending connections per socket (tokio's and Envoy's default).
const BACKLOG: i32 = 1024;

/// `count` non-blocking listeners on `addr`; with port 0, the port the
/// first one got is the one all share.
pub(super) fn reuseport_group(addr: SocketAddr, count: usize) -> anyhow::Result<Vec<TcpListener>> {
    let first = bind(addr).with_context(|| format!("binding {addr}"))?;
    let shared = first.local_addr()?;
    let mut group = vec![first];
    for _ in 1..count {
        group.push(bind(shared).with_context(|| format!("binding {shared} (SO_REUSEPORT) for another worker"))?);
    }
    Ok(group)
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As std's bind does: a restarted edge rebinds at once over TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
