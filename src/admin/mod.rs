//! The admin console: the virtual database `pgsplit`, open to the users listed in `admin_users`.
//! It speaks the simple query protocol (psql works) and answers SHOW commands, RELOAD,
//! PAUSE/RESUME and SHUTDOWN; anything else gets 42601 with the list of commands. The other
//! operator's door is beside it: the metrics scrape (`scrape`) and its HTTP endpoint (`http`).

pub mod command;
pub mod http;
pub mod lists;
pub mod scrape;
pub mod show;
pub mod table;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncReadExt;

use crate::protocol::build::{self, Severity};
use crate::protocol::frame::{self, FrameError};
use crate::protocol::from_client;
use crate::protocol::sqlstate;
use crate::session::ClientError;
use crate::state::Shared;
use crate::stream::Stream;
use command::{Command, COMMANDS};

/// Longest console message: commands are short.
const MAX_MESSAGE: usize = 64 * 1024;

/// Serves one console client from AuthenticationOk to its last command.
pub async fn serve(ctx: Arc<Shared>, stream: &mut Stream, user: &str) -> Result<(), ClientError> {
    tracing::info!(user, "admin console opened");
    let _counted = ctx.clients.console();
    let mut out = BytesMut::new();
    build::auth_ok(&mut out);
    for (name, value) in [
        ("server_version", "16.0 (pgsplit console)"),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
    ] {
        build::parameter_status(&mut out, name, value);
    }
    build::backend_key_data(&mut out, 0, 0);
    build::ready_for_query(&mut out, b'I');
    stream.send(&out).await?;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let Some(frame) = frame::split_frame(&mut buf, MAX_MESSAGE)? else {
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
            continue;
        };
        if !from_client::may_send(frame.tag) {
            return Err(FrameError::UnknownClientMessage { tag: frame.tag }.into());
        }
        let mut out = BytesMut::new();
        match frame.tag {
            b'Q' => {
                let sql = String::from_utf8_lossy(from_client::query_sql(frame.body())).into_owned();
                run(&ctx, &sql, &mut out).await;
            }
            b'X' => return Ok(()),
            b'S' => {}
            _ => build::error(
                &mut out,
                Severity::Error,
                sqlstate::FEATURE_NOT_SUPPORTED,
                "the pgsplit console speaks only the simple query protocol",
                Some("Use psql, or a driver's simple query mode."),
            ),
        }
        if frame.tag == b'Q' || frame.tag == b'S' {
            build::ready_for_query(&mut out, b'I');
        }
        stream.send(&out).await?;
        if ctx.shutdown.is_cancelled() {
            return Ok(());
        }
    }
}

/// Runs one command and appends its reply (without ReadyForQuery).
async fn run(ctx: &Shared, sql: &str, out: &mut BytesMut) {
    match command::parse(sql) {
        Ok(Command::Empty) => out.extend_from_slice(&[b'I', 0, 0, 0, 4]),
        Ok(Command::Show(what)) => show::table(ctx, what).encode(out),
        Ok(Command::Reload) => match ctx.reload() {
            Ok(()) => build::command_complete(out, "RELOAD"),
            Err(e) => {
                // Said in the log too: whoever watches it, not only whoever typed RELOAD.
                tracing::error!(error = %e, "RELOAD from the admin console failed");
                build::error(out, Severity::Error, sqlstate::CONFIG_FILE_ERROR, &e, None)
            }
        },
        Ok(Command::Pause(db)) => pause(ctx, db, out).await,
        Ok(Command::Resume(db)) => {
            ctx.pause.resume(db.as_deref());
            tracing::info!(database = db.as_deref().unwrap_or("(all)"), "resumed");
            build::command_complete(out, "RESUME");
        }
        Ok(Command::Shutdown) => {
            tracing::info!("SHUTDOWN from the admin console");
            ctx.shutdown.cancel();
            build::command_complete(out, "SHUTDOWN");
        }
        Err(text) => {
            let message = format!("unknown pgsplit console command: {text}");
            let hint = format!("Commands: {COMMANDS}.");
            build::error(out, Severity::Error, sqlstate::SYNTAX_ERROR, &message, Some(&hint));
        }
    }
}

/// Pauses, then waits for the transactions running on the database's pools to end.
async fn pause(ctx: &Shared, db: Option<String>, out: &mut BytesMut) {
    if let Some(name) = db.as_deref().filter(|n| !ctx.config().settings.databases.contains_key(*n)) {
        let message = format!("database \"{name}\" is not configured");
        return build::error(out, Severity::Error, sqlstate::INVALID_CATALOG_NAME, &message, None);
    }
    ctx.pause.pause(db.as_deref());
    tracing::info!(database = db.as_deref().unwrap_or("(all)"), "paused: new transactions wait for RESUME");
    let deadline = Instant::now() + ctx.config().settings.limits.shutdown_timeout;
    loop {
        let busy = busy_servers(ctx, db.as_deref());
        if busy == 0 {
            return build::command_complete(out, "PAUSE");
        }
        if Instant::now() >= deadline {
            let message = format!("paused, but {busy} server connections are still in transactions");
            let hint = "New transactions wait for RESUME; the running ones (or pinned clients) keep their connections.";
            return build::error(out, Severity::Error, sqlstate::OBJECT_IN_USE, &message, Some(hint));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Server connections lent out in the pools of `db` (or of every database).
fn busy_servers(ctx: &Shared, db: Option<&str>) -> usize {
    let config = ctx.config();
    let server_db = db.and_then(|d| config.settings.databases.get(d)).map(|d| d.server_dbname.as_str());
    ctx.pools.pools().iter().filter(|p| server_db.is_none_or(|d| p.key().database == d)).map(|p| p.in_use()).sum()
}
