//! The floor under a proxy, for `scripts/bench`'s floor suite: a bare 1:1 TCP forwarder that
//! gives each client its own server connection and copies bytes both ways, with no parsing, no
//! pooling and no routing. Run on tokio's current-thread runtime (as pgsplit's one worker runs)
//! or on one edge-triggered epoll loop (as PgBouncer's libevent loop runs), it measures what the
//! event loop alone costs per transaction on this machine, so a report can tell pgsplit's own
//! work from its runtime's.
//!
//! Usage: forward tokio|epoll LISTEN_ADDR SERVER_ADDR

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;

/// Bytes read per call; a read that returns fewer drained the socket.
const CHUNK: usize = 16 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let parsed = match &args[..] {
        [_, kind, listen, server] => listen.parse().ok().zip(server.parse().ok()).map(|a| (kind.as_str(), a)),
        _ => None,
    };
    let result = match parsed {
        Some(("tokio", (listen, server))) => on_tokio(listen, server),
        Some(("epoll", (listen, server))) => on_epoll(listen, server),
        _ => {
            eprintln!("usage: forward tokio|epoll LISTEN_ADDR SERVER_ADDR");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("forward: {e}");
        std::process::exit(1);
    }
}

/// One task per client on a current-thread runtime, `select!` over both sockets, each read
/// written out whole.
fn on_tokio(listen: SocketAddr, server: SocketAddr) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn pair(mut client: TcpStream, server: SocketAddr) -> std::io::Result<()> {
        let mut upstream = TcpStream::connect(server).await?;
        client.set_nodelay(true)?;
        upstream.set_nodelay(true)?;
        let (mut from_client, mut from_server) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
        loop {
            tokio::select! {
                biased;
                n = client.read(&mut from_client) => match n? {
                    0 => return Ok(()),
                    n => upstream.write_all(&from_client[..n]).await?,
                },
                n = upstream.read(&mut from_server) => match n? {
                    0 => return Ok(()),
                    n => client.write_all(&from_server[..n]).await?,
                },
            }
        }
    }

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen).await?;
        loop {
            let (client, _) = listener.accept().await?;
            tokio::spawn(pair(client, server));
        }
    })
}

/// A client and its server connection, with what could not be written to each yet.
struct Pair {
    client: mio::net::TcpStream,
    server: mio::net::TcpStream,
    to_client: Vec<u8>,
    to_server: Vec<u8>,
}

/// One thread, one edge-triggered epoll set (mio); token 2i is pair i's client, 2i+1 its server.
fn on_epoll(listen: SocketAddr, server: SocketAddr) -> std::io::Result<()> {
    use mio::{Events, Interest, Poll, Token};
    const LISTENER: Token = Token(usize::MAX);

    let mut poll = Poll::new()?;
    let mut listener = mio::net::TcpListener::bind(listen)?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut pairs: Vec<Option<Pair>> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; CHUNK];
    loop {
        poll.poll(&mut events, None)?;
        for event in events.iter() {
            if event.token() == LISTENER {
                while let Ok((client, _)) = listener.accept() {
                    let Ok(mut pair) = connect(client, server) else { continue };
                    let i = pairs.iter().position(Option::is_none).unwrap_or_else(|| {
                        pairs.push(None);
                        pairs.len() - 1
                    });
                    let both = Interest::READABLE | Interest::WRITABLE;
                    poll.registry().register(&mut pair.client, Token(2 * i), both)?;
                    poll.registry().register(&mut pair.server, Token(2 * i + 1), both)?;
                    pairs[i] = Some(pair);
                }
                continue;
            }
            let i = event.token().0 / 2;
            let Some(p) = pairs[i].as_mut() else { continue };
            let (from, to, pending, backlog) = match event.token().0 % 2 {
                0 => (&mut p.client, &mut p.server, &mut p.to_server, &mut p.to_client),
                _ => (&mut p.server, &mut p.client, &mut p.to_client, &mut p.to_server),
            };
            let alive = (!event.is_readable() || pump(from, to, pending, &mut buf))
                && (!event.is_writable() || flush(from, backlog));
            if !alive {
                pairs[i] = None;
            }
        }
    }
}

/// Opens the server connection for a client.
fn connect(client: mio::net::TcpStream, server: SocketAddr) -> std::io::Result<Pair> {
    let upstream = std::net::TcpStream::connect(server)?;
    upstream.set_nonblocking(true)?;
    upstream.set_nodelay(true)?;
    client.set_nodelay(true)?;
    let server = mio::net::TcpStream::from_std(upstream);
    Ok(Pair { client, server, to_client: Vec::new(), to_server: Vec::new() })
}

/// Copies what `from` has to `to`, keeping in `pending` what `to` cannot take yet.
/// False when either side is gone.
fn pump(from: &mut mio::net::TcpStream, to: &mut mio::net::TcpStream, pending: &mut Vec<u8>, buf: &mut [u8]) -> bool {
    loop {
        let n = match from.read(buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) => return e.kind() == ErrorKind::WouldBlock,
        };
        if !pending.is_empty() {
            pending.extend_from_slice(&buf[..n]);
        } else {
            let mut written = 0;
            while written < n {
                match to.write(&buf[written..n]) {
                    Ok(w) => written += w,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        pending.extend_from_slice(&buf[written..n]);
                        break;
                    }
                    Err(_) => return false,
                }
            }
        }
        if n < buf.len() {
            return true;
        }
    }
}

/// Writes what was pending for `to`. False when it is gone.
fn flush(to: &mut mio::net::TcpStream, pending: &mut Vec<u8>) -> bool {
    while !pending.is_empty() {
        match to.write(pending) {
            Ok(n) => drop(pending.drain(..n)),
            Err(e) => return e.kind() == ErrorKind::WouldBlock,
        }
    }
    true
}
