//! What a relay sends the client: reply pieces joined into one write, and the pieces a guard
//! holds back until it knows the request ran.

use bytes::{Bytes, BytesMut};
use smallvec::SmallVec;

/// Replies held back by a guard; a request's are a few pieces, kept inline.
pub type Withheld = SmallVec<[Bytes; 4]>;

/// Reply pieces bound for the client, joined into one write: one piece is sent as it is, more
/// are copied together (pgsplit's own small answers and what follows them).
#[derive(Default)]
pub enum Outbox {
    #[default]
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Outbox {
    pub fn push(&mut self, piece: Bytes) {
        if piece.is_empty() {
            return;
        }
        *self = match std::mem::take(self) {
            Outbox::Empty => Outbox::One(piece),
            Outbox::One(first) => {
                let mut joined = BytesMut::with_capacity(first.len() + piece.len());
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&piece);
                Outbox::Many(joined)
            }
            Outbox::Many(mut joined) => {
                joined.extend_from_slice(&piece);
                Outbox::Many(joined)
            }
        };
    }

    pub fn extend(&mut self, pieces: Option<Withheld>) {
        for piece in pieces.unwrap_or_default() {
            self.push(piece);
        }
    }

    pub fn take(&mut self) -> Bytes {
        match std::mem::take(self) {
            Outbox::Empty => Bytes::new(),
            Outbox::One(piece) => piece,
            Outbox::Many(joined) => joined.freeze(),
        }
    }
}
