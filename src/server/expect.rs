//! The expectation queue: what a server connection still owes for each message sent to it, in
//! order, and what happens to those replies: forwarded to the client, swallowed (pgsplit's own
//! messages), or answered by pgsplit itself (client messages it dropped). This is what lets
//! pgsplit put a statement on a connection, or learn a commit's LSN, inside the client's own
//! pipeline without an extra round trip.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::protocol::from_client as c;
use crate::protocol::from_server;

/// Which message a reply sequence answers; decides when that sequence ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Parse,
    Bind,
    /// Describe of a statement: ParameterDescription, then RowDescription or NoData.
    DescribeStatement,
    /// Describe of a portal: RowDescription or NoData.
    DescribePortal,
    Execute,
    Close,
    Sync,
    Query,
    FunctionCall,
    /// pgsplit's LSN probe (a Query whose one row is the LSN).
    Probe,
    /// A plain COMMIT with the probe folded into its Query: the client's part ends at its
    /// CommandComplete, or at its ErrorResponse, after which the server skips the probe.
    FoldedCommit,
    /// The folded probe's part: its rows are swallowed, and the ReadyForQuery that ends the whole
    /// Query goes to the client. It stays owed until [`Expectations::take_folded_probe`], so the
    /// session sees that ReadyForQuery and then the probe's end, as with a probe of its own.
    FoldedProbe {
        /// The commit failed: the server rolled the transaction back and skipped the probe.
        commit_failed: bool,
        /// The ReadyForQuery ending the Query went to the client: the probe ends next.
        answered: bool,
    },
}

/// What becomes of the replies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    Forward,
    /// Replies are dropped, except an ErrorResponse of an injected Parse: the client must learn
    /// why its statement cannot run.
    Swallow,
    /// The message was never sent; pgsplit answers with these bytes when its turn comes.
    Answer(Bytes),
}

/// ParseComplete and CloseComplete, for dropped Parse and Close messages.
pub const PARSE_COMPLETE: &[u8] = b"1\0\0\0\x04";
pub const CLOSE_COMPLETE: &[u8] = b"3\0\0\0\x04";

#[derive(Clone, Debug, PartialEq, Eq)]
struct Owed {
    kind: Kind,
    fate: Fate,
    /// A statement this Parse puts on the connection. It is recorded as prepared when sent, so a
    /// pipelined request does not prepare it twice; an ErrorResponse takes it back.
    prepares: Option<u64>,
    /// For DescribeStatement: the ParameterDescription has arrived.
    got_parameters: bool,
}

/// What to do with one server message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub forward: bool,
    /// A ReadyForQuery completed a Sync, Query or FunctionCall.
    pub ready: bool,
    /// The probe's replies are complete.
    pub probe_done: bool,
    /// A Parse meant to prepare this statement failed.
    pub unprepared: Option<u64>,
}

/// The queue.
#[derive(Debug, Default)]
pub struct Expectations {
    q: VecDeque<Owed>,
    /// Copy-out data flows between the start of a COPY and its CommandComplete.
    copying: bool,
    /// The server waits for the client's COPY data (CopyIn or CopyBoth), until CommandComplete
    /// or an error ends the COPY.
    copy_in: bool,
}

impl Expectations {
    /// Expects replies to one message.
    pub fn push(&mut self, kind: Kind, fate: Fate, prepares: Option<u64>) {
        self.q.push_back(Owed { kind, fate, prepares, got_parameters: false });
    }

    /// Expects the replies to a client message, forwarded; `body` tells Describe's target.
    pub fn push_client(&mut self, tag: u8, body: &[u8]) {
        let kind = match tag {
            c::PARSE => Kind::Parse,
            c::BIND => Kind::Bind,
            c::DESCRIBE if body.first() == Some(&b'S') => Kind::DescribeStatement,
            c::DESCRIBE => Kind::DescribePortal,
            c::EXECUTE => Kind::Execute,
            c::CLOSE => Kind::Close,
            c::SYNC => Kind::Sync,
            c::QUERY => Kind::Query,
            c::FUNCTION_CALL => Kind::FunctionCall,
            // Flush and the COPY sub-protocol get no replies of their own.
            _ => return,
        };
        self.push(kind, Fate::Forward, None);
    }

    /// Nothing is owed.
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// A COPY is under way that the client feeds: the server waits for its data.
    pub fn copy_in(&self) -> bool {
        self.copy_in
    }

    /// The next replies owed are the probe's.
    pub fn probe_next(&self) -> bool {
        self.q.front().is_some_and(|e| matches!(e.kind, Kind::Probe | Kind::FoldedProbe { .. }))
    }

    /// Ends a folded probe whose ReadyForQuery has been passed on: `Some(commit_failed)` if one
    /// was.
    pub fn take_folded_probe(&mut self) -> Option<bool> {
        let Kind::FoldedProbe { commit_failed, answered: true } = self.q.front()?.kind else { return None };
        self.q.pop_front();
        Some(commit_failed)
    }

    /// What becomes of the next server message: forwarded, swallowed, or neither because
    /// pgsplit's own answer to a dropped client message is due first.
    pub fn front_fate(&self) -> &Fate {
        self.q.front().map_or(&Fate::Forward, |e| &e.fate)
    }

    /// Pops pgsplit's own answer, if one is due now.
    pub fn take_answer(&mut self) -> Option<Bytes> {
        if !matches!(self.q.front()?.fate, Fate::Answer(_)) {
            return None;
        }
        match self.q.pop_front()?.fate {
            Fate::Answer(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// Accounts for one server message with tag `tag`.
    pub fn on_reply(&mut self, tag: u8) -> Step {
        let mut step = Step { forward: true, ready: false, probe_done: false, unprepared: None };
        // Asynchronous messages belong to no request.
        if from_server::is_async(tag) {
            return step;
        }
        let Some(front) = self.q.front() else { return step };
        step.forward = match front.fate {
            Fate::Swallow => match front.kind {
                Kind::Parse => tag == from_server::ERROR_RESPONSE,
                Kind::FoldedProbe { .. } => tag == from_server::READY_FOR_QUERY,
                _ => false,
            },
            _ => true,
        };
        if self.on_copy(tag) {
            return step;
        }
        let Some(front) = self.q.front_mut() else { return step };
        if tag == from_server::ERROR_RESPONSE {
            if front.kind == Kind::Parse {
                step.unprepared = front.prepares;
            }
            if front.kind == Kind::FoldedCommit {
                // The server skips the rest of the Query: its ReadyForQuery ends the probe too.
                self.q.pop_front();
                if let Some(Owed { kind: Kind::FoldedProbe { commit_failed, .. }, .. }) = self.q.front_mut() {
                    *commit_failed = true;
                }
                return step;
            }
            self.fail_front();
            return step;
        }
        if let Kind::FoldedProbe { answered, .. } = &mut front.kind {
            if tag == from_server::READY_FOR_QUERY {
                *answered = true;
                step.ready = true;
                return step;
            }
        }
        if (front.kind, tag) == (Kind::DescribeStatement, b't') {
            front.got_parameters = true;
        }
        if completes(front.kind, tag, front.got_parameters) {
            step.ready = tag == from_server::READY_FOR_QUERY;
            step.probe_done = front.kind == Kind::Probe;
            self.q.pop_front();
        }
        step
    }

    /// Tracks a COPY; `true` when the message belongs to it (its start, or data flowing out)
    /// rather than ending a message owed.
    fn on_copy(&mut self, tag: u8) -> bool {
        let ends = tag == b'C' || tag == from_server::ERROR_RESPONSE;
        if ends {
            self.copy_in = false;
        }
        if self.copying {
            if !ends {
                return true;
            }
            self.copying = false;
        }
        if !from_server::starts_copy(tag) {
            return false;
        }
        self.copying = tag != from_server::COPY_IN_RESPONSE;
        self.copy_in = tag != from_server::COPY_OUT_RESPONSE;
        if tag == from_server::COPY_IN_RESPONSE && self.q.front().is_some_and(|e| e.kind == Kind::Execute) {
            // The server ignores a Sync that reaches it during COPY FROM STDIN; drivers send one
            // right after the Execute, before they know the COPY started.
            while self.q.get(1).is_some_and(|e| e.kind == Kind::Sync) {
                self.q.remove(1);
            }
        }
        true
    }

    /// An ErrorResponse ends the current message; in the extended protocol the server then skips
    /// everything up to the next Sync, so nothing is owed for those messages.
    fn fail_front(&mut self) {
        let Some(front) = self.q.front() else { return };
        if matches!(front.kind, Kind::Query | Kind::FunctionCall | Kind::Probe | Kind::FoldedProbe { .. } | Kind::Sync)
        {
            return;
        }
        while self.q.front().is_some_and(|e| e.kind != Kind::Sync) {
            self.q.pop_front();
        }
    }
}

/// Whether server message `tag` is the last reply to a message of `kind` (`got_parameters`:
/// a Describe of a statement already got its ParameterDescription).
fn completes(kind: Kind, tag: u8, got_parameters: bool) -> bool {
    match (kind, tag) {
        (Kind::Parse, b'1') | (Kind::Bind, b'2') | (Kind::Close, b'3') => true,
        (Kind::DescribeStatement, b'T' | b'n') => got_parameters,
        (Kind::DescribePortal, b'T' | b'n') => true,
        (Kind::Execute | Kind::FoldedCommit, b'C' | b's' | b'I') => true,
        (Kind::Sync | Kind::Query | Kind::FunctionCall | Kind::Probe, b'Z') => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
