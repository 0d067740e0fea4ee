//! A connection's byte stream, plain TCP or TLS over TCP, for client and server connections alike.
//!
//! One enum rather than a boxed trait object: the data path stays monomorphic, and the few
//! things only a plain socket can do (a one-syscall liveness probe, a non-blocking goodbye) keep
//! a fast path. TLS writes may stay buffered inside rustls until flushed, so every write goes
//! through [`Stream::send`], which flushes.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A client's TLS connection and the channel-binding data of the certificate it was shown, which
/// rustls does not tell afterwards.
pub struct ClientTlsStream {
    tls: tokio_rustls::server::TlsStream<TcpStream>,
    end_point: Option<Arc<[u8]>>,
}

impl ClientTlsStream {
    /// `end_point`: the `tls-server-end-point` data of the certificate this handshake presented.
    pub fn new(tls: tokio_rustls::server::TlsStream<TcpStream>, end_point: Option<Arc<[u8]>>) -> Self {
        ClientTlsStream { tls, end_point }
    }
}

/// A connection's bytes.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// A client's connection, with pgsplit as the TLS server.
    ClientTls(Box<ClientTlsStream>),
    /// pgsplit's connection to a server, with pgsplit as the TLS client.
    ServerTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Only while a plain socket is being wrapped in TLS: every operation fails.
    Detached,
}

impl Stream {
    /// Writes all of `bytes` and flushes, so nothing waits in a TLS buffer.
    pub fn send<'a>(&'a mut self, bytes: &'a [u8]) -> Sending<'a> {
        self.send_two(bytes, &[])
    }

    /// Sends two pieces as if joined, with one vectored write where the socket takes them all:
    /// a reply pgsplit makes itself and the server's replies behind it cost neither a copy
    /// into a joined buffer nor a second send.
    pub fn send_two<'a>(&'a mut self, first: &'a [u8], second: &'a [u8]) -> Sending<'a> {
        Sending { stream: self, first, second }
    }

    /// Reads what has arrived into `buf`. A plain socket waits for bytes holding no buffer at all
    /// (an empty one is let go, so an idle client costs none) and reads into this thread's
    /// scratch buffer, so `buf` grows by exactly what arrived: no reserve is allocated and freed
    /// per request. TLS reads into `buf` with `room` spare: rustls may hold decrypted bytes that
    /// the socket no longer signals. Cancel-safe: usable as a `select!` branch.
    pub async fn read_when_ready(&mut self, buf: &mut BytesMut, room: usize) -> io::Result<usize> {
        if let Stream::Plain(tcp) = &mut *self {
            if buf.is_empty() {
                *buf = BytesMut::new();
            }
            return std::future::poll_fn(|cx| poll_read_plain(tcp, cx, buf)).await;
        }
        buf.reserve(room);
        self.read_buf(buf).await
    }

    /// The address of the other end.
    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        match self {
            Stream::Plain(tcp) => tcp.peer_addr(),
            Stream::ClientTls(s) => s.tls.get_ref().0.peer_addr(),
            Stream::ServerTls(s) => s.get_ref().0.peer_addr(),
            Stream::Detached => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    /// Whether the bytes are encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::ClientTls(_) | Stream::ServerTls(_))
    }

    /// The ALPN protocol the TLS handshake agreed on, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match self {
            Stream::ClientTls(s) => s.tls.get_ref().1.alpn_protocol(),
            Stream::ServerTls(s) => s.get_ref().1.alpn_protocol(),
            Stream::Plain(_) | Stream::Detached => None,
        }
    }

    /// The `tls-server-end-point` channel-binding data (RFC 5929) of a client's TLS connection:
    /// `None` over plain TCP, or when pgsplit's certificate defines no such hash.
    pub fn tls_server_end_point(&self) -> Option<&[u8]> {
        match self {
            Stream::ClientTls(s) => s.end_point.as_deref(),
            Stream::Plain(_) | Stream::ServerTls(_) | Stream::Detached => None,
        }
    }

    /// The server's own certificate (DER) on pgsplit's TLS connection to it, for channel binding.
    pub fn server_certificate(&self) -> Option<&[u8]> {
        match self {
            Stream::ServerTls(s) => s.get_ref().1.peer_certificates()?.first().map(|c| c.as_ref()),
            _ => None,
        }
    }

    /// Takes the socket out of a plain stream, leaving it detached until the caller puts a TLS
    /// stream back; `None` (and no change) when the stream is not plain.
    pub fn take_plain(&mut self) -> Option<TcpStream> {
        match std::mem::replace(self, Stream::Detached) {
            Stream::Plain(tcp) => Some(tcp),
            other => {
                *self = other;
                None
            }
        }
    }

    /// Whether an idle connection is still open with nothing unasked waiting to be read. Never
    /// blocks: a plain socket costs one syscall; TLS reads what has arrived, which is fine since a
    /// connection that sent anything unasked is not reused.
    pub fn is_idle_and_open(&mut self) -> bool {
        if let Stream::Plain(tcp) = self {
            let mut probe = [0u8; 1];
            return matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        }
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(Waker::noop());
        matches!(Pin::new(self).poll_read(&mut cx, &mut buf), Poll::Pending)
    }

    /// Writes `bytes` if the socket takes them right away, for goodbyes from `Drop`; gives up
    /// otherwise.
    pub fn try_send_now(&mut self, bytes: &[u8]) {
        if let Stream::Plain(tcp) = self {
            let _ = tcp.try_write(bytes);
            return;
        }
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(Ok(n)) = Pin::new(&mut *self).poll_write(&mut cx, bytes) {
            if n == bytes.len() {
                let _ = Pin::new(self).poll_flush(&mut cx);
            }
        }
    }
}

/// The most one read of a plain socket takes: the size of each thread's scratch buffer.
const SCRATCH_LEN: usize = 16 * 1024;

thread_local! {
    /// Where plain-socket reads land before their bytes are copied to the connection's buffer.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_LEN].into_boxed_slice());
}

/// Reads what a plain socket has into this thread's scratch buffer and appends exactly that to
/// `buf`. Through `poll_read`, not `try_read`: a read that leaves the scratch buffer part empty
/// shows the socket drained, and tokio then waits for readiness instead of trying another read
/// that would only fail with EAGAIN. The scratch buffer is borrowed within one poll, never across
/// a wait.
fn poll_read_plain(tcp: &mut TcpStream, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
    SCRATCH.with_borrow_mut(|scratch| {
        let mut read = ReadBuf::new(scratch);
        match Pin::new(tcp).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => {
                match buf.is_empty() {
                    // A buffer of exactly what arrived, made in one step: growing an empty
                    // `BytesMut` takes its general reserve path first.
                    true => *buf = BytesMut::from(read.filled()),
                    false => buf.extend_from_slice(read.filled()),
                }
                Poll::Ready(Ok(read.filled().len()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
}

fn detached() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "stream detached during a TLS upgrade")
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::ClientTls(s) => Pin::new(&mut s.tls).poll_read(cx, buf),
            Stream::ServerTls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Detached => Poll::Ready(Err(detached())),
        }
    }
}

/// A send in flight: the pieces not written yet, then the flush. A plain struct rather than an
/// `async fn`, so the futures that await it (every request's among them) hold 40 bytes for it.
#[must_use = "futures do nothing unless awaited"]
pub struct Sending<'a> {
    stream: &'a mut Stream,
    first: &'a [u8],
    second: &'a [u8],
}

impl Future for Sending<'_> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while !this.first.is_empty() || !this.second.is_empty() {
            let stream = Pin::new(&mut *this.stream);
            let written = match (this.first.is_empty(), this.second.is_empty()) {
                (false, false) => {
                    let pieces = [IoSlice::new(this.first), IoSlice::new(this.second)];
                    std::task::ready!(stream.poll_write_vectored(cx, &pieces))?
                }
                (false, true) => std::task::ready!(stream.poll_write(cx, this.first))?,
                (true, _) => std::task::ready!(stream.poll_write(cx, this.second))?,
            };
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let from_first = written.min(this.first.len());
            this.first = &this.first[from_first..];
            this.second = &this.second[written - from_first..];
        }
        Pin::new(&mut *this.stream).poll_flush(cx)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::ClientTls(s) => Pin::new(&mut s.tls).poll_write(cx, buf),
            Stream::ServerTls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::ClientTls(s) => Pin::new(&mut s.tls).poll_write_vectored(cx, bufs),
            Stream::ServerTls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Stream::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::ClientTls(s) => s.tls.is_write_vectored(),
            Stream::ServerTls(s) => s.is_write_vectored(),
            Stream::Detached => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::ClientTls(s) => Pin::new(&mut s.tls).poll_flush(cx),
            Stream::ServerTls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::ClientTls(s) => Pin::new(&mut s.tls).poll_shutdown(cx),
            Stream::ServerTls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Detached => Poll::Ready(Err(detached())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Pieces larger than the socket takes at once arrive whole and in order: a vectored write
    /// that stops part-way resumes where it stopped.
    #[tokio::test]
    async fn two_pieces_arrive_whole_and_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let first: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let second: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        let expected = [first.clone(), second.clone()].concat();
        let reader = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            socket.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut stream = Stream::Plain(TcpStream::connect(addr).await.unwrap());
        stream.send_two(&first, &second).await.unwrap();
        stream.shutdown().await.unwrap();
        drop(stream);
        assert!(reader.await.unwrap() == expected, "the bytes arrived changed");
    }
}
