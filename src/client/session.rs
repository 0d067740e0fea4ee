//! The session: the only place that touches every stage. It reads a client request, routes it,
//! checks out a server connection, relays replies back, and releases the connection at
//! ReadyForQuery 'I' (transaction pooling) or at disconnect (session pooling).

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::cancel::{CancelHandle, CancelTarget};
use super::params::ClientParams;
use super::request::{self, Batch, Summary, Taken};
use super::startup::Accepted;
use super::ClientError;
use crate::app::AppContext;
use crate::config::{DatabaseSettings, PoolMode, UserSettings};
use crate::pool::{Checkout, Pool, PoolError};
use crate::protocol::build::{self, Severity};
use crate::route;
use crate::server::conn::BatchEnd;

/// Spare room kept in the client read buffer.
const READ_RESERVE: usize = 16 * 1024;

/// One logged-in client.
pub struct Session {
    client: TcpStream,
    cbuf: BytesMut,
    ctx: Arc<AppContext>,
    user: UserSettings,
    db: DatabaseSettings,
    mode: PoolMode,
    params: ClientParams,
    cancel: CancelHandle,
    /// The primary's pool, looked up once at login rather than per request.
    primary: Pool,
    /// The server connection kept between requests: inside a transaction, or in session mode.
    held: Option<Checkout>,
    /// After a refused Flush-ended request, messages are dropped until Sync, as PostgreSQL does.
    discarding: bool,
    id: u64,
}

impl Session {
    /// Completes the login: sends AuthenticationOk, ParameterStatus, BackendKeyData and
    /// ReadyForQuery. Only the very first login of a pool (or session pooling) needs a server
    /// connection; later ones are told the parameters the pool's connections report.
    pub async fn login(
        ctx: Arc<AppContext>,
        mut client: TcpStream,
        accepted: Accepted,
    ) -> Result<Self, (TcpStream, ClientError)> {
        let Accepted { startup, user, db } = accepted;
        let mode = ctx.settings.pool_mode_for(&db.name, &user.name);
        let pool = ctx.pools.pool(route::Route::Primary, &db, &user);
        let mut held = None;
        let initial = match (pool.login_params(), mode) {
            (Some(initial), PoolMode::Transaction) => initial,
            _ => match pool.checkout().await {
                Ok(server) => {
                    let initial = Arc::new(server.initial_params.clone());
                    held = Some(server);
                    initial
                }
                Err(e) => return Err((client, e.into())),
            },
        };
        let params = ClientParams::at_login(&initial, &ClientParams::requested(&startup));
        let cancel = ctx.cancels.register();
        let mut out = BytesMut::with_capacity(512);
        build::auth_ok(&mut out);
        for (name, value) in params.reported() {
            build::parameter_status(&mut out, name, value);
        }
        build::backend_key_data(&mut out, cancel.key.pid, cancel.key.secret);
        build::ready_for_query(&mut out, b'I');
        if mode == PoolMode::Transaction {
            held = None;
        } else if let Some(server) = held.as_mut() {
            server.needs_reset = true;
            cancel.set_target(Some(CancelTarget { addr: server.addr.clone(), key: server.key }));
        }
        if let Err(e) = client.write_all(&out).await {
            return Err((client, e.into()));
        }
        let id = ctx.next_client_id();
        let cbuf = BytesMut::with_capacity(READ_RESERVE);
        Ok(Session { client, cbuf, ctx, user, db, mode, params, cancel, primary: pool, held, discarding: false, id })
    }

    /// Serves requests until the client leaves; reports a fatal error to the client if one ends it.
    pub async fn run(mut self) {
        let result = self.serve_all().await;
        if let Err(e) = result {
            report_fatal(&mut self.client, &e).await;
            tracing::debug!(user = %self.user.name, error = %e, "session ended");
        }
    }

    async fn serve_all(&mut self) -> Result<(), ClientError> {
        while let Some(batch) = self.next_request().await? {
            self.serve(batch).await?;
        }
        Ok(())
    }

    /// Waits for a whole request. `None` when the client leaves.
    async fn next_request(&mut self) -> Result<Option<Batch>, ClientError> {
        let max = self.ctx.settings.limits.max_message_size;
        loop {
            match request::take(&mut self.cbuf, max, true)? {
                Taken::Batch(batch) => return Ok(Some(batch)),
                Taken::Terminate => return Ok(None),
                Taken::NeedMore => {}
            }
            let between_transactions = self.held.is_none();
            self.cbuf.reserve(READ_RESERVE);
            tokio::select! {
                read = self.client.read_buf(&mut self.cbuf) => {
                    if read? == 0 {
                        return Ok(None);
                    }
                }
                // Shutdown ends idle sessions at once; a transaction in progress runs to its end.
                _ = self.ctx.shutdown.cancelled(), if between_transactions => return Err(ClientError::Shutdown),
            }
        }
    }

    /// Runs one request on a server connection and relays the replies.
    async fn serve(&mut self, batch: Batch) -> Result<(), ClientError> {
        if self.discarding {
            return self.discard(batch.summary).await;
        }
        let mut server = match self.held.take() {
            Some(server) => server,
            None => match self.checkout().await {
                Ok(server) => server,
                Err(e) => return self.refuse(e, batch.summary).await,
            },
        };
        self.sync_params(&mut server).await?;
        server.send(&batch.bytes, batch.summary.readies, batch.summary.unsynced).await?;
        self.relay(server).await
    }

    async fn checkout(&mut self) -> Result<Checkout, PoolError> {
        let pool = self.primary.clone();
        let mut server = pool.checkout().await?;
        if self.mode == PoolMode::Session {
            server.needs_reset = true;
        }
        self.cancel.set_target(Some(CancelTarget { addr: server.addr.clone(), key: server.key }));
        Ok(server)
    }

    /// Brings the connection to this client's parameters, unless it already carries them.
    async fn sync_params(&mut self, server: &mut Checkout) -> Result<(), ClientError> {
        let me = Some((self.id, self.params.version));
        if server.params_owner == me {
            return Ok(());
        }
        if let Some(sql) = self.params.sync_sql(server) {
            server.run_internal(&sql).await?;
        }
        self.params.mark_applied(server);
        if server.params_changed {
            // The server's spelling of what the client asked for ("ISO" reads back "ISO, MDY").
            self.tell_changes(server).await?;
        }
        server.params_owner = Some((self.id, self.params.version));
        Ok(())
    }

    /// Adopts the connection's parameter values and reports the changed ones to the client.
    async fn tell_changes(&mut self, server: &mut Checkout) -> Result<(), ClientError> {
        server.params_changed = false;
        let changed = self.params.adopt_changes(&server.params);
        if !changed.is_empty() {
            let mut out = BytesMut::new();
            for (name, value) in &changed {
                build::parameter_status(&mut out, name, value);
            }
            self.client.write_all(&out).await?;
        }
        Ok(())
    }

    /// Forwards server replies to the client, and further client messages to the server, until
    /// every reply owed has arrived and no pipeline is open.
    async fn relay(&mut self, mut server: Checkout) -> Result<(), ClientError> {
        let max = self.ctx.settings.limits.max_message_size;
        loop {
            while let Some((batch, end)) = server.take_batch()? {
                if end == BatchEnd::Ready && server.settled() && !server.unsynced {
                    self.end_request(server);
                    self.client.write_all(&batch).await?;
                    return Ok(());
                }
                self.client.write_all(&batch).await?;
            }
            self.cbuf.reserve(READ_RESERVE);
            tokio::select! {
                // Replies: forwarded at the top of the loop.
                read = server.read_more() => read?,
                // While replies are owed the client may pipeline more, or stream COPY data.
                read = self.client.read_buf(&mut self.cbuf) => {
                    if read? == 0 {
                        return Err(ClientError::Gone);
                    }
                    match request::take(&mut self.cbuf, max, false)? {
                        Taken::Batch(b) => server.send(&b.bytes, b.summary.readies, b.summary.unsynced).await?,
                        Taken::Terminate => return Err(ClientError::Gone),
                        Taken::NeedMore => {}
                    }
                }
            }
        }
    }

    /// Settles a finished request: releases the connection (before the client sees the reply, so
    /// the next client gets it sooner), or keeps it while a transaction is open or in session mode.
    fn end_request(&mut self, mut server: Checkout) {
        if server.params_changed {
            // The client saw these ParameterStatus messages go by; only remember them.
            self.params.adopt_changes(&server.params);
            server.params_changed = false;
        }
        server.params_owner = Some((self.id, self.params.version));
        if self.mode == PoolMode::Transaction && server.is_clean() {
            self.cancel.set_target(None);
            drop(server);
        } else {
            self.held = Some(server);
        }
    }

    /// Answers a request no server could take: an error, then ReadyForQuery if the request
    /// ended in one; after a Flush-ended request, messages are dropped until the next Sync.
    async fn refuse(&mut self, e: PoolError, summary: Summary) -> Result<(), ClientError> {
        let e = ClientError::Pool(e);
        tracing::warn!(user = %self.user.name, database = %self.db.name, error = %e, "request refused");
        let mut out = BytesMut::new();
        build::error(&mut out, Severity::Error, e.sqlstate().unwrap_or("08006"), &e.to_string(), e.hint());
        if summary.readies > 0 {
            build::ready_for_query(&mut out, b'I');
        } else {
            self.discarding = true;
        }
        self.client.write_all(&out).await?;
        Ok(())
    }

    async fn discard(&mut self, summary: Summary) -> Result<(), ClientError> {
        if summary.readies > 0 {
            self.discarding = false;
            let mut out = BytesMut::new();
            build::ready_for_query(&mut out, b'I');
            self.client.write_all(&out).await?;
        }
        Ok(())
    }
}

/// Sends a FATAL ErrorResponse for errors the client can be told about.
pub async fn report_fatal(client: &mut TcpStream, e: &ClientError) {
    if let Some(code) = e.sqlstate() {
        let mut out = BytesMut::new();
        build::error(&mut out, Severity::Fatal, code, &e.to_string(), e.hint());
        // The connection is ending either way; a failed write changes nothing.
        let _ = client.write_all(&out).await;
        let _ = client.shutdown().await;
    }
}
