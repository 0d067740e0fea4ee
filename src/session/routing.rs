//! A session's consistency state (its write LSN, route hints, named statements) and how the
//! messages of one request become a routing [`Request`].

use std::borrow::Cow;
use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Instant;

use smallvec::SmallVec;

use super::dispatch::Requester;
use super::prepared::Prepared;
use crate::classify::{Classification, Classifier, Intent, RouteTarget, SessionChange, StatementKind};
use crate::monitor::topology::InsertBound;
use crate::monitor::NodeId;
use crate::protocol::frame::messages;
use crate::protocol::from_client;
use crate::route::{Request, RequestClass, Route, RuleContext};

/// What the messages of one request hold, as far as routing cares.
#[derive(Debug, Default)]
pub struct Inspection {
    /// Classifications of the statements the request runs, in order (inline for a few: a
    /// request costs no allocation for them).
    pub statements: Classes,
    /// Something runs that pgsplit cannot see (a statement prepared before it knew the session).
    pub opaque: bool,
    /// The first statement's text, kept only when a rule matches on text.
    pub first_text: Option<String>,
    /// The classification of each Parse, in order: the rewrite records it with the statement,
    /// once the Parse is really sent.
    pub parsed: Parses,
}

/// Classifications of a request's statements; most requests have one or two.
pub type Classes = SmallVec<[Arc<Classification>; 4]>;

/// The classifications of a request's Parses, and the generation of the classifier that made
/// them ([`Classifier::generation`]), which the statements they prepare keep.
#[derive(Debug, Default)]
pub struct Parses {
    /// One per Parse, in the request's order.
    pub classes: Classes,
    /// The classifier's generation; `None` when its cache is off and nothing is kept.
    pub generation: Option<NonZeroU64>,
}

impl Inspection {
    /// Some statement must run on the primary.
    pub fn writes(&self) -> bool {
        self.opaque || self.statements.iter().any(|c| c.writes && !matches!(c.intent, Intent::Begin { .. }))
    }

    /// Some statement is a COPY.
    pub fn copies(&self) -> bool {
        self.statements.iter().any(|c| c.kind == StatementKind::Copy)
    }

    /// Some statement begins, ends or marks a transaction.
    pub fn has_transaction_control(&self) -> bool {
        self.statements.iter().any(|c| c.has_transaction_control)
    }

    /// Some statement is DISCARD ALL, which drops every prepared statement on the server.
    pub fn discards_all(&self) -> bool {
        use crate::classify::DiscardKind;
        self.statements
            .iter()
            .any(|c| c.session_changes.iter().any(|s| matches!(s, SessionChange::Discard(DiscardKind::All))))
    }

    /// The classification rules and hints look at: the first statement's.
    pub fn first(&self) -> Option<&Classification> {
        self.statements.first().map(|c| &**c)
    }
}

/// A session's routing state.
#[derive(Debug, Default)]
pub struct RoutingState {
    /// The LSN of the session's last committed write, once captured.
    pub write_lsn: Option<u64>,
    /// The timeline the primary was on when that LSN was captured, when known.
    pub write_timeline: Option<u32>,
    /// A write was sent whose LSN is not captured yet: reads go to the primary meanwhile.
    pub dirty: bool,
    /// Writes sent so far; a probe clears `dirty` only if no write was sent after it.
    writes_sent: u64,
    /// The LSN probes in flight.
    probes: Probes,
    /// The current transaction wrote.
    pub tx_wrote: bool,
    /// The session was dirty before the current transaction's first write: what a transaction
    /// the server rolled back leaves.
    dirty_before_tx: bool,
    /// When the session last left a transaction with writes whose LSN is unknown: a sample of
    /// the primary asked for later bounds their LSN (`bound_by_sample`).
    writes_ended: Option<Instant>,
    /// `SET pgsplit.min_lsn`: reads need at least this LSN.
    pub min_lsn: Option<u64>,
    /// `SET pgsplit.route`: a session-wide hint.
    pub route_hint: Option<RouteTarget>,
    /// `pgsplit.report_write_lsn`: the session wants its write LSN with each commit (`None`:
    /// as the config says).
    report_write_lsn: Option<bool>,
    /// `default_transaction_read_only` is on: transactions may go to a replica.
    pub read_only_default: bool,
    /// The standby the session's last read went to, kept while no other is less busy: its
    /// position in [primary, replicas…] plus one, 0 for none. A byte, not an `Option<Route>`:
    /// every idle session carries it.
    last_standby: u8,
}

impl RoutingState {
    /// Starts from the startup parameters (`options=-c pgsplit.route=primary` and the like).
    pub fn from_params(params: &[(String, String)]) -> Self {
        let mut state = RoutingState::default();
        for (name, value) in params {
            state.apply_setting(name, value);
        }
        state
    }

    /// Notes the node a request went to: a standby is kept for the session's next reads.
    pub fn routed(&mut self, route: Route) {
        if let Route::Standby(node) = route {
            self.last_standby = u8::try_from(node.index() + 1).unwrap_or(0);
        }
    }

    /// Notes a write sent to the primary.
    pub fn wrote(&mut self) {
        if !self.tx_wrote {
            self.dirty_before_tx = self.dirty;
        }
        self.writes_sent += 1;
        self.dirty = true;
        self.tx_wrote = true;
        self.writes_ended = None;
    }

    /// Notes that the session is outside a transaction: every write it sent has ended.
    pub fn outside_transaction(&mut self) {
        self.tx_wrote = false;
        if self.dirty && self.writes_ended.is_none() {
            self.writes_ended = Some(Instant::now());
        }
    }

    /// Takes the elected primary's insert position, from a sample asked for after every write of
    /// the session ended, as their LSN (an upper bound): a session that learns its LSN lazily
    /// reads on replicas again without a probe once the monitor sampled the primary after its
    /// writes (within two check intervals).
    pub fn bound_by_sample(&mut self, bound: Option<InsertBound>) {
        let Some(ended) = self.writes_ended.filter(|_| self.dirty && self.probes.is_empty()) else { return };
        let Some(bound) = bound.filter(|b| b.asked > ended) else { return };
        self.learned(bound.lsn);
        self.write_timeline = Some(bound.timeline).filter(|t| *t > 0);
        self.dirty = false;
    }

    /// Whether the session learns its write LSN with each commit and is told it
    /// (`pgsplit.write_lsn`): when it asked (`pgsplit.report_write_lsn`), else `default`.
    pub fn reports_write_lsn(&self, default: bool) -> bool {
        self.report_write_lsn.unwrap_or(default)
    }

    /// The LSN probe's rule for a session that learns its LSN with each commit: on the primary,
    /// behind a request that may commit a write (`writes` outside a transaction, or the end of a
    /// transaction that wrote). Never behind a COPY: a server in COPY FROM STDIN would take the
    /// probe for a protocol violation; the session then stays dirty (reads on the primary) until
    /// a later probe.
    pub fn wants_probe(&self, inspection: &Inspection, route: Route, writes: bool) -> bool {
        route == Route::Primary
            && (writes || (inspection.has_transaction_control() && self.tx_wrote))
            && !inspection.copies()
    }

    /// The LSN probe's rule for a session that learns its LSN only when a read needs it: behind
    /// a plain read outside a transaction that goes to the primary while the session's writes
    /// have no LSN (it would go there anyway: only the primary is sure to have them). Its answer
    /// covers every write before it, so the session's next reads may go to replicas that
    /// replayed them. A session that never reads after writing never pays for a probe.
    pub fn wants_lazy_probe(&self, inspection: &Inspection, route: Route) -> bool {
        route == Route::Primary
            && self.dirty
            && self.probes.is_empty()
            && self.reads_only(inspection)
            && !inspection.copies()
    }

    /// Notes an LSN probe sent behind everything sent so far; `true` when it covers finished
    /// transactions only (a read's probe).
    pub fn probe_sent(&mut self) -> bool {
        self.probes.push_back((self.writes_sent, !self.tx_wrote));
        !self.tx_wrote
    }

    /// The last probe sent will not answer: it was drained with a request the node refused.
    pub fn probe_dropped(&mut self) {
        self.probes.pop_back();
    }

    /// The commit the last probe rode in failed, so the server rolled its transaction back and
    /// skipped the probe: the transaction's writes never happened, and the session is as dirty
    /// as before them, unless a write was sent behind the commit.
    pub fn probe_rolled_back(&mut self) {
        if self.probes.pop_front().map(|(covers, _)| covers) == Some(self.writes_sent) {
            if self.tx_wrote {
                self.dirty = self.dirty_before_tx;
            }
            self.tx_wrote = false;
        }
    }

    /// Takes a probe's answer: after a commit the LSN covers every write sent before the probe;
    /// a write pipelined behind the probe keeps the session dirty. A probe sent when no
    /// transaction of the session's had written (a read's) covers the writes before it however
    /// the transaction it ran in ends.
    pub fn probe_answered(&mut self, lsn: Option<u64>, committed: bool) -> Option<u64> {
        let (covers, settled) = self.probes.pop_front().unzip();
        if committed {
            self.tx_wrote = false;
        } else if settled != Some(true) {
            return None;
        }
        let lsn = lsn?;
        self.learned(lsn);
        if covers == Some(self.writes_sent) {
            self.dirty = false;
        }
        Some(lsn)
    }

    /// Keeps `lsn` as the session's write LSN; the write LSN never goes back.
    fn learned(&mut self, lsn: u64) {
        self.write_lsn = Some(self.write_lsn.map_or(lsn, |old| old.max(lsn)));
    }

    /// Reads the request's messages: classifies Query and Parse texts, looks up the named
    /// statements Bind runs in `statements`, and applies pgsplit's own settings.
    pub fn inspect(
        &mut self,
        classifier: &Classifier,
        batch: &[u8],
        keep_text: bool,
        statements: &Prepared,
    ) -> Inspection {
        let mut inspection = Inspection::default();
        inspection.parsed.generation = classifier.generation();
        let mut parsed_here: SmallVec<[&[u8]; 4]> = SmallVec::new();
        for (tag, body) in messages(batch) {
            match tag {
                from_client::QUERY => {
                    let text = utf8(from_client::query_text(body).unwrap_or_default());
                    inspection.statements.push(classifier.classify(&text));
                    keep(&mut inspection.first_text, &text, keep_text);
                }
                from_client::PARSE => {
                    let Some((name, text)) = from_client::parse_message(body) else { continue };
                    // Most drivers send their unnamed statement's text again with each execution.
                    let class = match statements.repeated_unnamed(body, classifier.generation()) {
                        Some(kept) => {
                            classifier.count_kept();
                            kept.clone()
                        }
                        None => classifier.classify(&utf8(text)),
                    };
                    if keep_text {
                        keep(&mut inspection.first_text, &utf8(text), true);
                    }
                    inspection.parsed.classes.push(class.clone());
                    parsed_here.push(name);
                    inspection.statements.push(class);
                }
                from_client::BIND => {
                    let Some(name) = from_client::bind_statement(body) else { continue };
                    if parsed_here.contains(&name) {
                        continue;
                    }
                    match statements.class_of(name) {
                        Some(class) => inspection.statements.push(class.clone()),
                        None => inspection.opaque = true,
                    }
                }
                _ => {}
            }
        }
        for class in &inspection.statements {
            for change in &class.session_changes {
                self.apply_change(change);
            }
        }
        inspection
    }

    fn apply_change(&mut self, change: &SessionChange) {
        match change {
            SessionChange::Set { name, value, local: false } => self.apply_setting(name, value),
            SessionChange::Reset { name } => self.apply_setting(name, ""),
            SessionChange::ResetAll | SessionChange::Discard(_) => {
                self.route_hint = None;
                self.min_lsn = None;
                self.report_write_lsn = None;
                self.read_only_default = false;
            }
            SessionChange::Set { .. } => {}
        }
    }

    fn apply_setting(&mut self, name: &str, value: &str) {
        match name.to_ascii_lowercase().as_str() {
            "pgsplit.route" => self.route_hint = RouteTarget::parse(value),
            "pgsplit.min_lsn" => self.min_lsn = crate::classify::parse_lsn(value),
            "pgsplit.report_write_lsn" => self.report_write_lsn = parse_bool(value),
            "default_transaction_read_only" => self.read_only_default = parse_bool(value) == Some(true),
            _ => {}
        }
    }

    /// The request only reads (a plain read or a `READ ONLY` transaction): replicas may take it.
    pub fn reads_only(&self, inspection: &Inspection) -> bool {
        matches!(self.class_of(inspection), RequestClass::Read | RequestClass::ReadOnlyTransaction)
    }

    /// The routing class of a request that starts with no server held.
    pub fn class_of(&self, inspection: &Inspection) -> RequestClass {
        let begin = inspection.statements.iter().find_map(|c| match c.intent {
            Intent::Begin { read_only } => Some(read_only),
            _ => None,
        });
        let others_write = inspection.opaque
            || inspection.statements.iter().any(|c| c.writes && !matches!(c.intent, Intent::Begin { .. }));
        match begin {
            _ if others_write => RequestClass::Write,
            Some(Some(true)) => RequestClass::ReadOnlyTransaction,
            Some(None) if self.read_only_default => RequestClass::ReadOnlyTransaction,
            Some(_) => RequestClass::Transaction,
            None if inspection.statements.iter().all(is_plain_read) => RequestClass::Read,
            None => RequestClass::Write,
        }
    }

    /// The routing question for a request that starts with no server held: its class, hint,
    /// the LSN a replica needs, and what rules match on.
    pub fn request<'a>(&self, inspection: &'a Inspection, who: &Requester<'a>, read_your_writes: bool) -> Request<'a> {
        let first = inspection.first();
        let rule = RuleContext {
            database: &who.db.name,
            user: &who.user.name,
            application_name: who.application_name,
            kind: first.map_or("other", |c| c.kind.name()),
            tables: first.map_or(&[], |c| &c.tables),
            functions: first.map_or(&[], |c| &c.functions),
            sql: inspection.first_text.as_deref().unwrap_or(""),
        };
        Request {
            class: self.class_of(inspection),
            hint: self.hint(inspection),
            min_lsn: self.min_lsn(inspection, read_your_writes),
            lsn_timeline: self.write_timeline.filter(|_| read_your_writes && self.write_lsn.is_some()),
            previous: self.last_standby.checked_sub(1).map(|i| Route::Standby(NodeId::at(i.into()))),
            rule,
        }
    }

    /// The route hint in force: the statement's beats the session's.
    pub fn hint(&self, inspection: &Inspection) -> Option<RouteTarget> {
        let statement = inspection.first().and_then(|c| c.hints.route);
        statement.or(self.route_hint)
    }

    /// The LSN a replica must have replayed for this read: the session's own writes (when
    /// read-your-writes is on), `SET pgsplit.min_lsn`, and a `min_lsn` hint.
    pub fn min_lsn(&self, inspection: &Inspection, read_your_writes: bool) -> Option<u64> {
        let own = self.write_lsn.filter(|_| read_your_writes);
        let hinted = inspection.statements.iter().filter_map(|c| c.hints.min_lsn).max();
        [own, self.min_lsn, hinted].into_iter().flatten().max()
    }
}

/// The LSN probes in flight, oldest first: for each, how many writes had been sent before it,
/// and whether their transactions had all ended (its answer then counts whatever follows it).
/// Made on the first probe: most sessions never send one, and an empty `VecDeque` would take 32
/// bytes in every idle session.
#[derive(Debug, Default)]
#[allow(clippy::box_collection, reason = "8 bytes in an idle session where an empty VecDeque takes 32")]
struct Probes(Option<Box<VecDeque<(u64, bool)>>>);

impl Probes {
    fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|q| q.is_empty())
    }

    fn push_back(&mut self, probe: (u64, bool)) {
        self.0.get_or_insert_default().push_back(probe);
    }

    fn pop_back(&mut self) -> Option<(u64, bool)> {
        self.0.as_mut()?.pop_back()
    }

    fn pop_front(&mut self) -> Option<(u64, bool)> {
        self.0.as_mut()?.pop_front()
    }
}

/// A boolean setting's value as PostgreSQL spells one; `None` for anything else (RESET's "").
fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Reads that may run anywhere: queries, SHOW, EXPLAIN without ANALYZE of a read, empty queries.
fn is_plain_read(c: &Arc<Classification>) -> bool {
    c.statements == 0 || (!c.writes && c.intent == Intent::Read)
}

/// A statement's text as UTF-8: borrowed when valid (`from_utf8` checks ASCII a word at a time,
/// `from_utf8_lossy` a character at a time), else with replacement characters.
fn utf8(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

fn keep(slot: &mut Option<String>, text: &str, wanted: bool) {
    if wanted && slot.is_none() {
        *slot = Some(text.to_string());
    }
}

#[cfg(test)]
mod tests;
