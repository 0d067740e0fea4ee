//! A client request: the messages up to and including the one that asks for an answer (Query,
//! Sync, Flush, FunctionCall). Buffering whole requests means a lone Parse never holds a server.

use bytes::{Bytes, BytesMut};

use crate::protocol::frame::{self, FrameError};
use crate::protocol::from_client::{self, Pipeline};

/// A buffered request grows no larger than this before it is sent on, so a client streaming
/// messages without a Sync cannot make pgsplit buffer without bound.
pub const MAX_BUFFERED_REQUEST: usize = 256 * 1024;

/// What a run of client messages asks of the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// ReadyForQuery messages the server will send back.
    pub readies: usize,
    /// What the run leaves of an extended-protocol pipeline.
    pub pipeline: Pipeline,
    /// Messages that ask the server for something besides a Sync or a Flush. A run without any
    /// owes nothing but one ReadyForQuery per Sync: pgsplit can answer it without a server.
    pub work: usize,
}

impl Summary {
    /// Accounts for one message.
    pub fn note(&mut self, tag: u8) {
        if !matches!(tag, from_client::SYNC | from_client::FLUSH) {
            self.work += 1;
        }
        if from_client::expects_ready(tag) {
            self.readies += 1;
            self.pipeline = Pipeline::Closed;
        } else if from_client::opens_pipeline(tag) {
            self.pipeline = Pipeline::Open;
        }
    }
}

impl Summary {
    /// The client waits for a ReadyForQuery, not for the replies themselves (as after a Flush).
    pub fn waits_for_ready(&self) -> bool {
        self.readies > 0 && self.pipeline != Pipeline::Open
    }
}

/// Whole client messages ready to send to a server.
#[derive(Debug)]
pub struct Batch {
    pub bytes: Bytes,
    pub summary: Summary,
}

/// What the buffered client bytes hold.
#[derive(Debug)]
pub enum Taken {
    /// Not enough yet.
    NeedMore,
    /// A batch to forward.
    Batch(Batch),
    /// The client sent Terminate.
    Terminate,
}

/// Takes whole messages from `buf`.
///
/// With `whole_request`, only a complete request (or one over [`MAX_BUFFERED_REQUEST`]) is taken;
/// otherwise every whole message is, as while a server is already held.
///
/// Messages sent before a Terminate are taken first, as PostgreSQL runs them before it reads the
/// Terminate; the Terminate stays in `buf` until nothing precedes it. A request the Terminate cuts
/// short (no Sync) is dropped: PostgreSQL would roll back what it ran when the client left.
///
/// A tag no client may send is an error as soon as nothing taken precedes it, the same way: no
/// Sync will ever come to end the request it sits in, and PostgreSQL ends the connection too.
pub fn take(buf: &mut BytesMut, max_message: usize, whole_request: bool) -> Result<Taken, FrameError> {
    let mut summary = Summary::default();
    let mut len = 0;
    let mut terminate = false;
    let mut unknown = None;
    let mut complete = false;
    frame::scan(buf, max_message, |tag, message| {
        if tag == from_client::TERMINATE {
            terminate = true;
            return false;
        }
        if !from_client::may_send(tag) {
            unknown = Some(tag);
            return false;
        }
        summary.note(tag);
        len += message.len();
        complete = whole_request && from_client::ends_request(tag);
        !complete
    })?;
    if let Some(tag) = unknown.filter(|_| len == 0 || whole_request) {
        return Err(FrameError::UnknownClientMessage { tag });
    }
    if terminate && (len == 0 || whole_request) {
        return Ok(Taken::Terminate);
    }
    let ready = if whole_request { complete || len >= MAX_BUFFERED_REQUEST } else { len > 0 };
    if !ready {
        return Ok(Taken::NeedMore);
    }
    // A buffer holding exactly one request (the usual case) is handed over whole: no shared
    // header is allocated to split it, and the empty buffer left behind holds no memory.
    let bytes = if len == buf.len() { std::mem::take(buf).freeze() } else { buf.split_to(len).freeze() };
    Ok(Taken::Batch(Batch { bytes, summary }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8) -> Vec<u8> {
        vec![tag, 0, 0, 0, 4]
    }

    fn buf(tags: &[u8]) -> BytesMut {
        BytesMut::from(tags.iter().flat_map(|t| msg(*t)).collect::<Vec<_>>().as_slice())
    }

    #[test]
    fn lone_parse_waits_for_sync() {
        let mut b = buf(b"PB");
        assert!(matches!(take(&mut b, 1024, true).unwrap(), Taken::NeedMore));
        b.extend_from_slice(&buf(b"ES"));
        let Taken::Batch(batch) = take(&mut b, 1024, true).unwrap() else { panic!() };
        assert_eq!(batch.summary, Summary { readies: 1, pipeline: Pipeline::Closed, work: 3 });
        assert_eq!(batch.bytes.len(), 20);
        assert!(b.is_empty());
    }

    #[test]
    fn request_stops_at_first_boundary() {
        let mut b = buf(b"QPBH");
        let Taken::Batch(first) = take(&mut b, 1024, true).unwrap() else { panic!() };
        assert_eq!(first.summary.readies, 1);
        let Taken::Batch(second) = take(&mut b, 1024, true).unwrap() else { panic!() };
        assert_eq!(second.summary, Summary { readies: 0, pipeline: Pipeline::Open, work: 2 });
    }

    #[test]
    fn held_server_takes_everything_and_copy_does_not_open_a_pipeline() {
        let mut b = buf(b"ddc");
        let Taken::Batch(batch) = take(&mut b, 1024, false).unwrap() else { panic!() };
        assert_eq!(batch.summary, Summary { readies: 0, pipeline: Pipeline::Unchanged, work: 3 });
    }

    #[test]
    fn terminate() {
        assert!(matches!(take(&mut buf(b"X"), 1024, true).unwrap(), Taken::Terminate));
    }

    #[test]
    fn messages_before_terminate_are_taken_first() {
        let mut b = buf(b"QPBEX");
        let Taken::Batch(query) = take(&mut b, 1024, true).unwrap() else { panic!() };
        assert_eq!(query.bytes.len(), 5);
        assert!(matches!(take(&mut b, 1024, true).unwrap(), Taken::Terminate), "PBE without Sync is dropped");

        let mut b = buf(b"QPBEX");
        let Taken::Batch(all) = take(&mut b, 1024, false).unwrap() else { panic!() };
        assert_eq!(all.bytes.len(), 20);
        assert!(matches!(take(&mut b, 1024, false).unwrap(), Taken::Terminate));
    }

    #[test]
    fn a_tag_no_client_may_send_ends_the_session() {
        let unknown = Err(FrameError::UnknownClientMessage { tag: 7 });
        let mut alone = BytesMut::from(&[7, 0, 0, 0, 8, b'j', b'u', b'n', b'k'][..]);
        assert_eq!(take(&mut alone, 1024, true).map(|_| ()), unknown.clone(), "at once, not after a Sync");
        assert_eq!(take(&mut buf(&[b'P', b'B', 7, b'S']), 1024, true).map(|_| ()), unknown.clone());
        assert_eq!(take(&mut buf(b"p"), 1024, true).map(|_| ()), Err(FrameError::UnknownClientMessage { tag: b'p' }));

        // A whole request before it runs first, as PostgreSQL runs it before reading further.
        let mut b = buf(&[b'Q', 7]);
        let Taken::Batch(query) = take(&mut b, 1024, true).unwrap() else { panic!() };
        assert_eq!(query.bytes.len(), 5);
        assert_eq!(take(&mut b, 1024, true).map(|_| ()), unknown.clone());

        // While a server is held, what precedes it is forwarded; then the error.
        let mut b = buf(&[b'B', b'E', 7]);
        let Taken::Batch(pipelined) = take(&mut b, 1024, false).unwrap() else { panic!() };
        assert_eq!(pipelined.bytes.len(), 10);
        assert_eq!(take(&mut b, 1024, false).map(|_| ()), unknown);
    }

    #[test]
    fn every_client_message_is_taken() {
        let mut b = buf(b"PBDECHdcfFSQ");
        let Taken::Batch(batch) = take(&mut b, 1024, false).unwrap() else { panic!() };
        assert_eq!(batch.bytes.len(), 12 * 5);
    }

    #[test]
    fn sync_and_flush_are_no_work() {
        let Taken::Batch(b) = take(&mut buf(b"H"), 1024, true).unwrap() else { panic!() };
        assert_eq!(
            b.summary,
            Summary { readies: 0, pipeline: Pipeline::Unchanged, work: 0 },
            "a Flush opens no pipeline"
        );
        let Taken::Batch(b) = take(&mut buf(b"S"), 1024, true).unwrap() else { panic!() };
        assert_eq!(b.summary, Summary { readies: 1, pipeline: Pipeline::Closed, work: 0 });
    }
}
