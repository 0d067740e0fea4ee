//! A logged-in server connection. It forwards raw bytes and tracks what pooling and sessions
//! need, all private to `server/`: the transaction status and whether a pipeline is open, the
//! replies still owed (see [`super::expect`]), the statements prepared on it, the parameters it
//! carries and for which client (`state.rs` has the methods that read and change them).

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use lru::LruCache;
use tokio::io::AsyncReadExt;

use super::counters::PoolCounters;
use super::expect::{Expectations, Fate, Kind};
use super::list::ServerSlot;
use super::outgoing::{Outgoing, Owed};
use super::params::{ParamSet, Reported};
use super::{ReadError, ServerError};
use crate::protocol::frame::{self, messages, FrameError};
use crate::protocol::from_client::Pipeline;
use crate::protocol::from_server;
use crate::stream::Stream;

mod bench;
mod internal;
mod lsn_probe;
mod state;

/// Largest message accepted from a server: PostgreSQL's own 1 GiB field limit.
const MAX_SERVER_MESSAGE: usize = 1 << 30;
/// Spare room kept in the read buffer, so one read can bring many rows.
const READ_RESERVE: usize = 32 * 1024;
/// Terminate, sent when pgsplit closes a server connection.
const TERMINATE: &[u8] = b"X\0\0\0\x04";
/// The Query that opens a transaction a client began while holding no connection.
const BEGIN: &[u8] = b"Q\0\0\0\x0aBEGIN\0";
/// Statements kept prepared on one connection; the least recently used beyond this are closed.
pub const PREPARED_PER_CONNECTION: usize = 512;
/// The same as the LRU's capacity; evaluated at compile time, so the `expect` cannot fail at run time.
const PREPARED_CAPACITY: NonZeroUsize = NonZeroUsize::new(PREPARED_PER_CONNECTION).expect("a non-zero constant");

/// The server's cancel key for this connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendKey {
    pub pid: i32,
    pub secret: i32,
}

/// One server connection between checkouts and during one.
pub struct ServerConn {
    stream: Stream,
    read_buf: BytesMut,
    /// `host:port` of the node.
    addr: Arc<str>,
    key: BackendKey,
    /// The session parameters the connection carries: reported ones as ParameterStatus last
    /// said, unreported ones as pgsplit last set them for a client.
    params: ParamSet,
    /// The reported parameters as they were right after login.
    initial_params: BTreeMap<String, String>,
    /// A ParameterStatus arrived since the session last looked.
    params_changed: bool,
    /// Which client's parameters the connection last carried, and at which version.
    params_owner: Option<(u64, u64)>,
    /// The shared reported set of the last client the connection was brought to; cleared when
    /// a reported value changes (see [`ServerConn::fits`]).
    params_fit: Option<Reported>,
    created: Instant,
    last_used: Instant,
    /// The status byte of the last ReadyForQuery.
    status: u8,
    /// Replies the server still owes, in order, and what becomes of them.
    owed: Expectations,
    /// pgsplit's statements prepared on this connection, by id, least recently used first out.
    prepared: LruCache<u64, ()>,
    /// The buffers of the last rewritten request, reused by the next one (see
    /// [`ServerConn::outgoing`]): a rewrite allocates nothing once the connection has served one.
    spare: Outgoing,
    /// The LSN the probe's row carried, until its ReadyForQuery.
    probe_lsn: Option<u64>,
    /// Extended-protocol messages were sent after the last Sync.
    unsynced: bool,
    /// Whether the session holding the connection still owes it a DISCARD ALL.
    needs_reset: bool,
    /// The socket failed or the protocol broke: never reuse.
    broken: bool,
    /// The client's transaction began in pgsplit: its BEGIN goes out before the next request.
    begin_first: bool,
    /// ErrorResponses forwarded so far, so a session can tell whether its SETs took effect.
    errors: u64,
    /// The counters of the pool the connection belongs to.
    counters: Arc<PoolCounters>,
    /// When the request now running was first sent, for its latency.
    busy_since: Option<Instant>,
    /// The connection's entry on its pool's list of open connections.
    slot: Option<ServerSlot>,
    /// The login was SCRAM-SHA-256-PLUS, bound to this TLS connection.
    channel_bound: bool,
}

/// What a batch of server output ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchEnd {
    /// More output is owed.
    More,
    /// The ReadyForQuery settling the client's requests so far arrived (its last 6 bytes).
    Ready,
    /// The LSN probe's replies arrived and were swallowed; the LSN, if it succeeded.
    Probe(Option<u64>),
    /// The commit the probe rode in failed: the server rolled the transaction back and skipped
    /// the probe.
    RolledBack,
}

impl BatchEnd {
    /// The end as trace logs spell it.
    pub fn name(self) -> &'static str {
        match self {
            BatchEnd::More => "more",
            BatchEnd::Ready => "ready",
            BatchEnd::Probe(_) => "probe",
            BatchEnd::RolledBack => "rolled back",
        }
    }
}

impl ServerConn {
    /// Wraps a socket that has just finished the login, with what the login reported.
    pub fn new(stream: Stream, addr: Arc<str>, key: BackendKey, params: BTreeMap<String, String>) -> Self {
        let now = Instant::now();
        ServerConn {
            stream,
            read_buf: BytesMut::with_capacity(READ_RESERVE * 2),
            addr,
            key,
            initial_params: params.clone(),
            params: ParamSet { reported: Arc::new(params), unreported: BTreeMap::new() },
            params_changed: false,
            params_owner: None,
            params_fit: None,
            created: now,
            last_used: now,
            status: b'I',
            owed: Expectations::default(),
            prepared: LruCache::new(PREPARED_CAPACITY),
            spare: Outgoing::default(),
            probe_lsn: None,
            unsynced: false,
            needs_reset: false,
            broken: false,
            begin_first: false,
            errors: 0,
            counters: Arc::default(),
            busy_since: None,
            slot: None,
            channel_bound: false,
        }
    }

    /// Whether the login was bound to the TLS connection (SCRAM-SHA-256-PLUS).
    pub fn channel_bound(&self) -> bool {
        self.channel_bound
    }

    /// Records that the login was bound to the TLS connection.
    pub(in crate::server) fn set_channel_bound(&mut self) {
        self.channel_bound = true;
    }

    /// Idle outside a transaction with nothing owed: safe to hand to another client.
    pub fn is_clean(&self) -> bool {
        !self.broken && self.owed.is_empty() && !self.unsynced && self.status == b'I' && !self.needs_reset
    }

    /// Nothing is owed, so a ROLLBACK or DISCARD ALL can bring the connection back to clean.
    pub fn is_resettable(&self) -> bool {
        !self.broken && self.owed.is_empty() && !self.unsynced
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// Nothing is owed to anyone.
    pub fn settled(&self) -> bool {
        self.owed.is_empty()
    }

    /// The server waits for the client: an extended-protocol pipeline is open, or a COPY the
    /// client feeds is under way. What the client already sent must reach it without a new read.
    pub fn awaits_client(&self) -> bool {
        self.unsynced || self.owed.copy_in()
    }

    /// The next replies owed are the LSN probe's.
    pub fn probe_next(&self) -> bool {
        self.owed.probe_next()
    }

    /// Whether an idle connection still looks usable: no EOF and no unsolicited output (a FATAL
    /// from a terminated backend, or stray notifications) waiting on the socket. Never blocks.
    pub fn is_alive(&mut self) -> bool {
        !self.broken && self.read_buf.is_empty() && self.stream.is_idle_and_open()
    }

    /// Reads more bytes from the server. Cancel-safe: usable as a `select!` branch.
    pub async fn read_more(&mut self) -> Result<(), ReadError> {
        self.read_buf.reserve(READ_RESERVE);
        match self.stream.read_buf(&mut self.read_buf).await {
            Ok(0) => {
                self.broken = true;
                Err(ReadError::Closed)
            }
            Ok(n) => {
                self.counters.received_bytes.fetch_add(n as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                Err(ReadError::Io(e))
            }
        }
    }

    /// Takes the next piece of server output for the client: a run of whole messages to forward
    /// as they are, or pgsplit's own answer to a client message it did not send. Swallowed replies never show.
    ///
    /// A run stops right after the ReadyForQuery that settles the client's requests so far
    /// ([`BatchEnd::Ready`]), so the caller can release the connection before forwarding it; the
    /// probe's end comes back as [`BatchEnd::Probe`] with an empty piece.
    pub fn take_batch(&mut self) -> Result<Option<(Bytes, BatchEnd)>, ServerError> {
        loop {
            if let Some(commit_failed) = self.owed.take_folded_probe() {
                // Its ReadyForQuery went out as the client's: the probe's end follows it.
                let lsn = self.probe_lsn.take();
                let end = if commit_failed { BatchEnd::RolledBack } else { BatchEnd::Probe(lsn) };
                return Ok(Some((Bytes::new(), end)));
            }
            if let Some(bytes) = self.owed.take_answer() {
                return Ok(Some((bytes, BatchEnd::More)));
            }
            let mut offset = 0;
            while let Some(len) = self.whole_message_at(offset)? {
                let tag = self.read_buf[offset];
                let fate = if from_server::is_async(tag) { &Fate::Forward } else { self.owed.front_fate() };
                if (offset > 0 && *fate != Fate::Forward) || matches!(fate, Fate::Answer(_)) {
                    break;
                }
                let step = self.owed.on_reply(tag);
                self.observe(tag, offset, len);
                if step.forward {
                    self.count_forwarded(tag, offset, len);
                }
                if let Some(id) = step.unprepared {
                    self.prepared.pop(&id);
                }
                if !step.forward {
                    if tag == b'D' && self.owed.probe_next() {
                        self.probe_lsn = lsn_probe::row_lsn(&self.read_buf[offset + 5..offset + len]);
                    }
                    drop(self.read_buf.split_to(len));
                    if step.probe_done {
                        return Ok(Some((Bytes::new(), BatchEnd::Probe(self.probe_lsn.take()))));
                    }
                    if step.ready && self.owed.is_empty() {
                        // pgsplit's own Sync (see `close_pipeline`) settled the connection.
                        return Ok(Some((Bytes::new(), BatchEnd::Ready)));
                    }
                    continue;
                }
                offset += len;
                if step.ready && (self.owed.is_empty() || self.owed.probe_next()) {
                    return Ok(Some((self.read_buf.split_to(offset).freeze(), BatchEnd::Ready)));
                }
            }
            if offset > 0 {
                return Ok(Some((self.read_buf.split_to(offset).freeze(), BatchEnd::More)));
            }
            if !matches!(self.owed.front_fate(), Fate::Answer(_)) {
                return Ok(None);
            }
        }
    }

    /// The length of the whole message at `offset` of the read buffer, if it has all arrived.
    fn whole_message_at(&mut self, offset: usize) -> Result<Option<usize>, ServerError> {
        let scan = frame::scan(&self.read_buf[offset..], MAX_SERVER_MESSAGE, |_, _| false);
        let scan = scan.map_err(|e| self.protocol_error(e))?;
        Ok((scan.count == 1).then_some(scan.len))
    }

    /// Tracks what pooling needs from a message: the transaction status and parameters.
    fn observe(&mut self, tag: u8, offset: usize, len: usize) {
        let body = &self.read_buf[offset + 5..offset + len];
        match tag {
            from_server::READY_FOR_QUERY => self.status = from_server::ready_status(body).unwrap_or(b'E'),
            // Fields borrowed apart from the read buffer `body` lives in: see `record_reported`.
            from_server::PARAMETER_STATUS if state::record_param(Arc::make_mut(&mut self.params.reported), body) => {
                self.params_changed = true;
                self.params_fit = None;
            }
            from_server::ERROR_RESPONSE => self.errors += 1,
            _ => {}
        }
    }

    /// Counts what reaches the client: requests completed and errors by SQLSTATE class.
    fn count_forwarded(&mut self, tag: u8, offset: usize, len: usize) {
        match tag {
            from_server::READY_FOR_QUERY => {
                // One clock read for both the request's latency and the end of its use, which
                // the pool's checkin then takes instead of reading the clock again.
                let took = self.busy_since.take().map(|t| {
                    self.last_used = Instant::now();
                    self.last_used.saturating_duration_since(t)
                });
                self.counters.ready(took, self.status == b'I');
            }
            from_server::ERROR_RESPONSE => {
                let body = &self.read_buf[offset + 5..offset + len];
                self.counters.error(from_server::error_field(body, b'C'));
            }
            _ => {}
        }
    }

    /// Sends whole client messages as they are, expecting their replies; `pipeline` says what
    /// they leave of an extended-protocol pipeline. With `probe`, the LSN probe follows them in
    /// the same write (its replies follow theirs).
    pub async fn send(&mut self, bytes: &[u8], pipeline: Pipeline, probe: bool) -> Result<(), ServerError> {
        if !probe && !self.begin_first {
            self.expect_sent(bytes, pipeline);
            return self.write(bytes).await;
        }
        // The deferred BEGIN, if owed, goes first (`outgoing`), the probe, if asked, last: in a
        // plain commit's own text when it can ride there.
        let mut out = self.outgoing();
        self.expect_outgoing(&mut out, Pipeline::Unchanged);
        if probe && self.fold_lsn_probe(&mut out, bytes) {
            self.note_pipeline(pipeline);
            return self.write_outgoing(out).await;
        }
        self.expect_sent(bytes, pipeline);
        out.bytes.extend_from_slice(bytes);
        if probe {
            self.append_lsn_probe(&mut out);
        }
        self.write_outgoing(out).await
    }

    /// An empty request to rewrite into, with the buffers the last one used; hand it back with
    /// [`ServerConn::send_outgoing`]. It starts with the client's deferred BEGIN, if one is owed.
    pub fn outgoing(&mut self) -> Outgoing {
        let mut out = std::mem::take(&mut self.spare);
        if std::mem::take(&mut self.begin_first) {
            out.inject(Kind::Query, BEGIN, None);
        }
        out
    }

    /// Idle, and no BEGIN waits to go out in front of the next request.
    pub fn outside_transaction(&self) -> bool {
        self.status == b'I' && !self.begin_first
    }

    /// Sends the BEGIN pgsplit answered for the client in front of the next request, in the same
    /// write; its replies are swallowed, as the client had them already. The connection is idle
    /// (the pool hands out no other), so a plain BEGIN cannot fail there.
    pub fn begin_first(&mut self) {
        self.begin_first = true;
    }

    /// Sends a rewritten request and expects what it owes, then the LSN probe with `probe`; its
    /// buffers are kept for the next.
    pub async fn send_outgoing(
        &mut self,
        mut out: Outgoing,
        pipeline: Pipeline,
        probe: bool,
    ) -> Result<(), ServerError> {
        self.expect_outgoing(&mut out, pipeline);
        if probe {
            self.append_lsn_probe(&mut out);
        }
        self.write_outgoing(out).await
    }

    /// Writes what `out` holds, its replies already expected, and keeps its buffers.
    async fn write_outgoing(&mut self, out: Outgoing) -> Result<(), ServerError> {
        let sent = self.write(&out.bytes).await;
        self.keep_spare(out);
        sent
    }

    /// Expects the replies of client messages sent as they are, and notes the pipeline.
    fn expect_sent(&mut self, bytes: &[u8], pipeline: Pipeline) {
        for (tag, body) in messages(bytes) {
            self.owed.push_client(tag, body);
        }
        self.note_pipeline(pipeline);
    }

    /// Expects, in order, what a rewritten request owes, and notes the pipeline.
    fn expect_outgoing(&mut self, out: &mut Outgoing, pipeline: Pipeline) {
        for owed in out.owed.drain(..) {
            match owed {
                Owed::Client { tag, first } => self.owed.push_client(tag, &[first]),
                Owed::Own { kind, fate, prepares } => self.owed.push(kind, fate, prepares),
            }
        }
        self.note_pipeline(pipeline);
    }

    fn note_pipeline(&mut self, pipeline: Pipeline) {
        match pipeline {
            Pipeline::Open => self.unsynced = true,
            Pipeline::Closed => self.unsynced = false,
            Pipeline::Unchanged => {}
        }
    }

    /// Keeps a sent request's buffers for the next rewrite.
    fn keep_spare(&mut self, mut out: Outgoing) {
        out.clear();
        self.spare = out;
    }

    /// Ends an open extended-protocol pipeline with a Sync of pgsplit's own, whose ReadyForQuery
    /// the client never sees: how a client's simple Query that must run elsewhere leaves a
    /// pipeline it opened with Flush (a simple Query would have ended it on the server anyway).
    pub async fn close_pipeline(&mut self) -> Result<(), ServerError> {
        self.owed.push(Kind::Sync, Fate::Swallow, None);
        self.unsynced = false;
        self.write(b"S\0\0\0\x04").await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ServerError> {
        self.note_write(bytes.len());
        if let Err(e) = self.stream.send(bytes).await {
            self.broken = true;
            return Err(e.into());
        }
        Ok(())
    }

    /// What a write of `len` bytes counts: the request's latency starts, the bytes sent.
    fn note_write(&mut self, len: usize) {
        self.busy_since.get_or_insert_with(Instant::now);
        self.counters.sent_bytes.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// Records a ParameterStatus; a changed value means no client's set is known to fit any more.
    fn record_reported(&mut self, body: &[u8]) {
        if state::record_param(Arc::make_mut(&mut self.params.reported), body) {
            self.params_changed = true;
            self.params_fit = None;
        }
    }

    fn protocol_error(&mut self, e: FrameError) -> ServerError {
        self.broken = true;
        ServerError::Protocol(e.to_string())
    }
}

impl Drop for ServerConn {
    fn drop(&mut self) {
        // Say goodbye so the server logs a clean disconnect; a full socket buffer just skips it.
        self.stream.try_send_now(TERMINATE);
    }
}

impl ServerConn {
    /// Takes over bytes read past the end of the login.
    pub(super) fn absorb(&mut self, leftover: BytesMut) {
        if !leftover.is_empty() {
            self.read_buf.extend_from_slice(&leftover);
        }
    }
}

#[cfg(test)]
mod tests;
