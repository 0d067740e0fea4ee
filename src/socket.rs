//! Socket options shared by client and server connections.

use std::time::Duration;

use tokio::net::TcpStream;

/// Disables Nagle (pgsplit batches its writes itself) and turns on TCP keepalive, so a peer that
/// vanished without closing is noticed and what it held is freed.
pub fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
}
