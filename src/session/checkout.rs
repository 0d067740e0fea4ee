//! Getting a server connection for a request: the one the session keeps, or one checked out on
//! the node the request is routed to, brought to the client's parameters.

use bytes::BytesMut;

use super::dispatch::{self, Nodes, Requester};
use super::routing::Inspection;
use super::{params, ClientError, Session};
use crate::config::PoolMode;
use crate::pool::Checkout;
use crate::protocol::build;
use crate::route::{Reason, Route};
use crate::state::cancel::CancelTarget;
use crate::state::clients::ClientState;

impl Session {
    /// The server connection for a request: the one kept (inside a transaction, pinned, or in
    /// session mode), else one checked out on the node the request is routed to (the primary
    /// when it continues a transaction `begun` without a connection).
    pub(super) async fn acquire(
        &mut self,
        inspection: &Inspection,
        begun: bool,
    ) -> Result<(Checkout, Route), ClientError> {
        if let Some(server) = self.server.take() {
            let Some(route) = self.nodes.kept_route(server.pool()) else {
                // Its node lost the election while up: dropping the connection rolls the
                // transaction back there, and nothing more of it reaches that node.
                let node = server.addr().to_string();
                self.tx.abandon();
                self.routing.tx_wrote = false;
                self.cancel.set_target(None);
                self.slot.set_state(ClientState::Idle);
                return Err(ClientError::PrimaryChanged(node));
            };
            return Ok((server, route));
        }
        self.checkout(inspection, begun).await
    }

    /// Moves to the current configuration between transactions: the database's and user's new
    /// settings, the pools and topology they now map to, and the classifier.
    pub(super) fn follow_reload(&mut self) {
        if self.ctx.generation() != self.config.generation {
            self.config = self.ctx.config();
            if let Some(db) = self.config.settings.database(&self.db.name) {
                self.db = db;
            }
            if let Some(user) = self.config.settings.users.get(&self.user.name) {
                self.user = user.clone();
            }
            self.nodes = Nodes::resolve(&self.ctx, &self.db, &self.user);
        }
    }

    /// Routes a request and checks out a connection on the chosen node; the rest of a
    /// transaction `begun` without a connection goes where its BEGIN would have: the primary.
    async fn checkout(&mut self, inspection: &Inspection, begun: bool) -> Result<(Checkout, Route), ClientError> {
        // Only rules read the application name: no map lookup per request without them.
        let application_name = match self.config.policy.rules.is_empty() {
            true => "",
            false => self.params.reported().get("application_name").map_or("", String::as_str),
        };
        let who = Requester { db: &self.db, user: &self.user, application_name, mode: self.mode };
        self.slot.set_state(ClientState::Waiting);
        if self.ctx.pause.is_paused(&self.db.name) {
            Box::pin(self.ctx.pause.wait(&self.db.name)).await;
        }
        // In a block of its own, so the choice's result is gone before the checkout's await: the
        // future holds a route, not room for an error.
        let route = {
            let chosen = if begun {
                self.ctx.decisions.count(Route::Primary, Reason::Transaction);
                Ok(Route::Primary)
            } else {
                // Only a read gains from a bound: a write leaves the session dirty again.
                let bounds = self.routing.dirty && self.routing.reads_only(inspection);
                if let Some(topology) = self.nodes.topology.as_ref().filter(|_| bounds) {
                    self.routing.bound_by_sample(topology.current().insert_bound);
                }
                dispatch::choose(&self.ctx, &self.config, &self.nodes, &self.routing, inspection, &who).await
            };
            match chosen {
                Ok(route) => route,
                Err(e) => return Err(self.not_served(e)),
            }
        };
        let timeout = self.config.policy.settings.failover_timeout;
        let (mut server, route) = match dispatch::checkout(&self.ctx, &self.nodes, route, timeout).await {
            Ok(pair) => pair,
            Err(e) => return Err(self.not_served(e)),
        };
        self.slot.set_state(ClientState::Active);
        self.routing.routed(route);
        if self.mode == PoolMode::Session {
            server.set_needs_reset(true);
        }
        self.cancel.set_target(Some(CancelTarget { addr: server.addr().clone(), key: server.key() }));
        Ok((server, route))
    }

    /// The client is idle again after a request that got no connection.
    fn not_served(&self, e: ClientError) -> ClientError {
        self.slot.set_state(ClientState::Idle);
        e
    }

    /// Whether the connection carries this client's parameters already (claimed for it if so):
    /// asked before every request, and nearly always yes, so no future is made for it.
    pub(super) fn params_fit(&self, server: &mut Checkout) -> bool {
        let me = (self.id, self.params.version);
        let fits = server.carries(me) || server.fits(self.params.expected());
        if fits {
            server.set_owner(me);
        }
        fits
    }

    /// Brings the connection to this client's parameters (it does not carry them: `params_fit`).
    pub(super) async fn sync_params(&mut self, server: &mut Checkout) -> Result<(), ClientError> {
        if let Some(sql) = params::diff(self.params.expected(), server.params()) {
            server.run_internal(&sql).await?;
        }
        server.set_unreported(self.params.expected().unreported.clone());
        if server.take_params_changed() {
            // The server's spelling of what the client asked for ("ISO" reads back "ISO, MDY").
            self.tell_changes(server).await?;
        }
        server.set_fit(&self.params.expected().reported);
        server.set_owner((self.id, self.params.version));
        Ok(())
    }

    /// Adopts the connection's parameter values and reports the changed ones to the client.
    async fn tell_changes(&mut self, server: &mut Checkout) -> Result<(), ClientError> {
        let changed = self.params.adopt_changes(&server.params().reported, &self.ctx.param_sets);
        if !changed.is_empty() {
            let mut out = BytesMut::new();
            for (name, value) in &changed {
                build::parameter_status(&mut out, name, value);
            }
            self.client.send(&out).await?;
        }
        Ok(())
    }
}
