//! The end of a login: what a client is told before its first request.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::BytesMut;

use super::Session;
use crate::config::{DatabaseSettings, PoolMode, UserSettings};
use crate::pool::Checkout;
use crate::protocol::build;
use crate::protocol::startup::StartupMessage;
use crate::session::dispatch::Nodes;
use crate::session::params::ClientParams;
use crate::session::prepared::Prepared;
use crate::session::routing::RoutingState;
use crate::session::ClientError;
use crate::state::cancel::{CancelHandle, CancelTarget};
use crate::state::clients::NewClient;
use crate::state::Shared;
use crate::stream::Stream;

/// A client that passed authentication, with where it wants to go.
pub struct Authenticated {
    pub startup: StartupMessage,
    /// Shared with the configuration (a pointer, not a copy per client).
    pub user: Arc<UserSettings>,
    pub db: Arc<DatabaseSettings>,
}

impl Session {
    /// Completes the login: sends AuthenticationOk, ParameterStatus, BackendKeyData and
    /// ReadyForQuery. Only the very first login of a pool (or session pooling) needs a server
    /// connection; later ones are told the parameters the pool's connections report.
    pub async fn login(
        ctx: Arc<Shared>,
        mut client: Stream,
        authenticated: Authenticated,
    ) -> Result<Self, (Stream, ClientError)> {
        let Authenticated { startup, user, db } = authenticated;
        let config = ctx.config();
        let mode = config.settings.pool_mode_for(&db.name, &user.name);
        // Refused before any server is asked, as PostgreSQL refuses them before the session runs.
        let requested = match ClientParams::requested(&startup) {
            Ok(requested) => requested,
            Err(e) => return Err((client, e.into())),
        };
        let nodes = Nodes::resolve(&ctx, &db, &user);
        let (initial, mut server) = match initial_params(&nodes, mode).await {
            Ok(found) => found,
            Err(e) => return Err((client, e)),
        };
        let params = ClientParams::at_login(&initial, &requested, &ctx.param_sets);
        let cancel = ctx.cancels.register();
        if let Some(server) = server.as_mut() {
            server.set_needs_reset(true);
            cancel.set_target(Some(CancelTarget { addr: server.addr().clone(), key: server.key() }));
        }
        if let Err(e) = client.send(&greeting(&params, &cancel)).await {
            return Err((client, e.into()));
        }
        let id = ctx.next_client_id();
        crate::session::logging::record_id(id);
        tracing::info!(tls = client.is_tls(), pool_mode = mode.name(), "client logged in");
        let slot = ctx.clients.join(NewClient {
            id,
            addr: client.peer_addr().ok(),
            user: user.clone(),
            database: db.clone(),
            application_name: params.reported().get("application_name").map_or("".into(), |name| name.as_str().into()),
            tls: client.is_tls(),
            target: cancel.slot(),
        });
        Ok(Session {
            client,
            // Taken when the client sends something: an idle client holds no read buffer.
            client_in: BytesMut::new(),
            ctx,
            user,
            db,
            mode,
            config,
            routing: RoutingState::from_params(&requested),
            params,
            cancel,
            nodes,
            prepared: Prepared::default(),
            tx: Default::default(),
            server,
            ready_after_probe: None,
            discarding: false,
            begin_owed: false,
            id,
            slot,
        })
    }
}

/// The parameters a fresh connection of the primary's pool reports, and in session pooling the
/// connection the client keeps. Transaction pooling opens one only for a pool's first login.
async fn initial_params(
    nodes: &Nodes,
    mode: PoolMode,
) -> Result<(Arc<BTreeMap<String, String>>, Option<Checkout>), ClientError> {
    if let (Some(initial), PoolMode::Transaction) = (nodes.primary().login_params(), mode) {
        return Ok((initial, None));
    }
    let server = nodes.primary().checkout().await?;
    let initial = Arc::new(server.login_params().clone());
    let kept = (mode != PoolMode::Transaction).then_some(server);
    Ok((initial, kept))
}

/// AuthenticationOk, a ParameterStatus per reported parameter, BackendKeyData, ReadyForQuery.
fn greeting(params: &ClientParams, cancel: &CancelHandle) -> BytesMut {
    let mut out = BytesMut::with_capacity(512);
    build::auth_ok(&mut out);
    for (name, value) in params.reported() {
        build::parameter_status(&mut out, name, value);
    }
    build::backend_key_data(&mut out, cancel.key.pid, cancel.key.secret);
    build::ready_for_query(&mut out, b'I');
    out
}
