//! The metrics endpoint: `GET /metrics` (Prometheus text format) and `GET /healthz` (200 while
//! every database's primary answers the monitor, else 503). A deliberately small HTTP/1.1
//! server: one request per connection, a bounded head, a deadline, then close.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::scrape;
use crate::state::Shared;

/// Longest request head read; scrapers send a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;

/// How long a scraper has to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves scrapes until shutdown.
pub async fn serve(listener: TcpListener, ctx: Arc<Shared>) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics endpoint listening");
    }
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = ctx.shutdown.cancelled() => return,
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &ctx).await {
                tracing::debug!(error = %e, "metrics request failed");
            }
        });
    }
}

async fn answer(mut stream: TcpStream, ctx: &Shared) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let (status, content_type, body) = respond(&head, ctx);
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads up to the blank line that ends the request head (or MAX_HEAD bytes).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Status line, content type and body for a request head.
fn respond(head: &str, ctx: &Shared) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", scrape::scrape(ctx)),
        ("GET", "/healthz") if scrape::primaries_known(ctx) => ("200 OK", TEXT, "ok\n".into()),
        ("GET", "/healthz") => ("503 Service Unavailable", TEXT, "no primary reachable\n".into()),
        ("GET", _) => ("404 Not Found", TEXT, "try /metrics or /healthz\n".into()),
        _ => ("405 Method Not Allowed", TEXT, "only GET\n".into()),
    }
}
