//! A request on its way to one server connection: the bytes to write and, in the same order, what
//! each message owes in replies. A rewrite (prepared statements, see `session::prepared`) builds
//! one; [`super::ServerConn::send_outgoing`] queues the expectations and writes the bytes, so the
//! reply queue stays private to the connection.

use bytes::{BufMut, Bytes, BytesMut};

use super::expect::{Fate, Kind};

/// Bytes and the replies they owe.
#[derive(Clone, Debug, Default)]
pub struct Outgoing {
    pub(super) bytes: BytesMut,
    pub(super) owed: Vec<Owed>,
}

/// The replies one message owes.
#[derive(Clone, Debug)]
pub(super) enum Owed {
    /// A client message: its replies are forwarded; the first body byte tells a Describe's target.
    Client { tag: u8, first: u8 },
    /// Anything else: pgsplit's own message, or an answer pgsplit gives itself.
    Own { kind: Kind, fate: Fate, prepares: Option<u64> },
}

impl Outgoing {
    /// Empties it, keeping its buffers for the next request.
    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.owed.clear();
    }

    /// A client message, sent as `tag` and `body` (its own, or rewritten); replies forwarded.
    pub fn forward(&mut self, tag: u8, body: &[u8]) {
        put_message(&mut self.bytes, tag, body);
        self.owed.push(Owed::Client { tag, first: body.first().copied().unwrap_or(0) });
    }

    /// A client message sent as `tag` with its body in `parts` (rewritten without a copy of its
    /// own); replies forwarded.
    pub fn forward_parts(&mut self, tag: u8, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.bytes.put_u8(tag);
        self.bytes.put_u32((len + 4) as u32);
        for part in parts {
            self.bytes.put_slice(part);
        }
        let first = parts.iter().find_map(|p| p.first()).copied().unwrap_or(0);
        self.owed.push(Owed::Client { tag, first });
    }

    /// A client Parse sent under pgsplit's name for statement `id` (`parse` is the whole
    /// message); its replies are forwarded, and a failure takes `id` back off the connection.
    pub fn forward_parse(&mut self, parse: &[u8], id: u64) {
        self.bytes.put_slice(parse);
        self.owed.push(Owed::Own { kind: Kind::Parse, fate: Fate::Forward, prepares: Some(id) });
    }

    /// A message of pgsplit's own (`whole`, header included) whose replies are swallowed:
    /// preparing statement `prepares` on the connection, or closing an evicted one.
    pub fn inject(&mut self, kind: Kind, whole: &[u8], prepares: Option<u64>) {
        self.bytes.put_slice(whole);
        self.owed.push(Owed::Own { kind, fate: Fate::Swallow, prepares });
    }

    /// A client message pgsplit does not send: `reply` answers it when its turn comes.
    pub fn answer(&mut self, kind: Kind, reply: Bytes) {
        self.owed.push(Owed::Own { kind, fate: Fate::Answer(reply), prepares: None });
    }
}

/// Appends one message: tag, length, body.
pub fn put_message(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.put_u8(tag);
    out.put_u32((body.len() + 4) as u32);
    out.put_slice(body);
}
