//! What a connection tracks for pooling and sessions, read and changed through methods so the
//! fields stay private to the connection: its identity, transaction status, pipeline, the
//! parameters it carries and for whom, the statements prepared on it, and its place in its pool.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{BackendKey, ServerConn};
use crate::protocol::from_server;
use crate::server::counters::PoolCounters;
use crate::server::list::ServerSlot;
use crate::server::params::{ParamSet, Reported};

impl ServerConn {
    /// `host:port` of the node.
    pub fn addr(&self) -> &Arc<str> {
        &self.addr
    }

    /// The server's cancel key for this connection.
    pub fn key(&self) -> BackendKey {
        self.key
    }

    /// The status byte of the last ReadyForQuery: `I`, `T` or `E`.
    pub fn status(&self) -> u8 {
        self.status
    }

    /// Extended-protocol messages were sent after the last Sync: the client's pipeline is open.
    pub fn in_pipeline(&self) -> bool {
        self.unsynced
    }

    /// ErrorResponses forwarded so far, so a session can tell whether its SETs took effect.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Whether the session that held the connection left it needing a DISCARD ALL.
    pub fn needs_reset(&self) -> bool {
        self.needs_reset
    }

    /// The session holding the connection leaves it needing a DISCARD ALL before reuse (or not,
    /// once it ran one itself).
    pub fn set_needs_reset(&mut self, needed: bool) {
        self.needs_reset = needed;
    }

    /// What a DISCARD ALL leaves: no unreported parameters, no prepared statements, no owner.
    pub(crate) fn discarded_all(&mut self) {
        self.params.unreported.clear();
        self.prepared.clear();
        self.params_owner = None;
        self.params_fit = None;
        self.needs_reset = false;
    }

    /// The session parameters the connection carries.
    pub fn params(&self) -> &ParamSet {
        &self.params
    }

    /// The reported parameters as they were right after login.
    pub fn login_params(&self) -> &BTreeMap<String, String> {
        &self.initial_params
    }

    /// Records the unreported parameters just set on the connection for a client.
    pub fn set_unreported(&mut self, unreported: BTreeMap<String, String>) {
        self.params.unreported = unreported;
    }

    /// Whether a ParameterStatus arrived since the last call.
    pub fn take_params_changed(&mut self) -> bool {
        std::mem::take(&mut self.params_changed)
    }

    /// Whether the connection carries what a client expecting `want` needs, known without
    /// comparing values: it was last brought to the same shared set of reported parameters
    /// (every client of one driver holds the same interned set), nothing reported changed since,
    /// and the unreported ones match. `false` means "compare them", not "they differ".
    pub fn fits(&self, want: &ParamSet) -> bool {
        self.params_fit.as_ref().is_some_and(|fit| Arc::ptr_eq(fit, &want.reported))
            && want.unreported == self.params.unreported
    }

    /// Notes that the connection now carries what a client with the reported set `reported`
    /// expects.
    pub fn set_fit(&mut self, reported: &Reported) {
        self.params_fit = Some(reported.clone());
    }

    /// Whether the connection carries the parameters of client `owner` (id, parameter version).
    pub fn carries(&self, owner: (u64, u64)) -> bool {
        self.params_owner == Some(owner)
    }

    /// Notes whose parameters the connection now carries.
    pub fn set_owner(&mut self, owner: (u64, u64)) {
        self.params_owner = Some(owner);
    }

    /// Ties the connection to its pool: its counters and its entry on the pool's list.
    pub(crate) fn join_pool(&mut self, counters: Arc<PoolCounters>, slot: ServerSlot) {
        self.counters = counters;
        self.slot = Some(slot);
    }

    /// Whether the connection is, at `now`, older than `max_lifetime` or was idle longer than
    /// `idle_timeout`.
    pub(crate) fn expired(&self, now: Instant, max_lifetime: Duration, idle_timeout: Duration) -> bool {
        self.broken
            || now.saturating_duration_since(self.created) >= max_lifetime
            || now.saturating_duration_since(self.last_used) >= idle_timeout
    }

    /// When the connection was opened.
    pub(crate) fn created(&self) -> Instant {
        self.created
    }

    /// Whether the connection may go back to the pool: `false` if it lived past `max_lifetime`
    /// by its last use. That is when its last ReadyForQuery came (noted for the request's
    /// latency), moments before the checkin: the idle time counts from there, and the checkin
    /// reads no clock.
    pub(crate) fn back_in_pool(&self, max_lifetime: Duration) -> bool {
        self.last_used.saturating_duration_since(self.created) < max_lifetime
    }

    /// Whether statement `id` is prepared here (and now the most recently used).
    pub fn has_statement(&mut self, id: u64) -> bool {
        self.prepared.get(&id).is_some()
    }

    /// Records statement `id` as prepared here (before its reply: a pipelined request must not
    /// prepare it twice; a failed Parse takes it back). Returns the statement the LRU evicted,
    /// which the caller must close.
    pub fn add_statement(&mut self, id: u64) -> Option<u64> {
        self.prepared.push(id, ()).map(|(old, ())| old).filter(|old| *old != id)
    }

    /// Forgets statement `id` here (the caller closes it on the server).
    pub fn drop_statement(&mut self, id: u64) {
        self.prepared.pop(&id);
    }

    /// Forgets every statement prepared here: DISCARD ALL dropped them on the server.
    pub fn forget_statements(&mut self) {
        self.prepared.clear();
    }
}

/// Records a ParameterStatus; `true` if it changed a value.
pub(super) fn record_param(params: &mut BTreeMap<String, String>, body: &[u8]) -> bool {
    let Some((name, value)) = from_server::parameter_status(body) else { return false };
    let name = String::from_utf8_lossy(name).into_owned();
    let value = String::from_utf8_lossy(value).into_owned();
    params.insert(name, value.clone()).as_ref() != Some(&value)
}
