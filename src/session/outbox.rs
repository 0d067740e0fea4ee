//! What a relay sends the client: reply pieces joined into one write, and the pieces a guard
//! holds back until it knows the request ran.

use bytes::{Bytes, BytesMut};
use smallvec::SmallVec;

use crate::stream::Stream;

/// Replies held back by a guard; a request's are a few pieces, kept inline.
pub type Withheld = SmallVec<[Bytes; 4]>;

/// Reply pieces bound for the client, sent in one write: one or two pieces as they are (two by a
/// vectored write: pgsplit's own ParseComplete for a reused statement, then the server's
/// replies), more copied together.
#[derive(Default)]
pub enum Outbox {
    #[default]
    Empty,
    One(Bytes),
    Two(Bytes, Bytes),
    Many(BytesMut),
}

impl Outbox {
    pub fn push(&mut self, piece: Bytes) {
        if piece.is_empty() {
            return;
        }
        // In place: the common cases move one piece, not the whole outbox twice.
        match self {
            Outbox::Empty => *self = Outbox::One(piece),
            Outbox::One(first) => *self = Outbox::Two(std::mem::take(first), piece),
            Outbox::Two(first, second) => {
                let mut joined = BytesMut::with_capacity(first.len() + second.len() + piece.len());
                joined.extend_from_slice(first);
                joined.extend_from_slice(second);
                joined.extend_from_slice(&piece);
                *self = Outbox::Many(joined);
            }
            Outbox::Many(joined) => joined.extend_from_slice(&piece),
        }
    }

    pub fn extend(&mut self, pieces: Option<Withheld>) {
        let Some(pieces) = pieces else { return };
        for piece in pieces {
            self.push(piece);
        }
    }

    /// The pieces joined, for a caller that must hold them.
    pub fn take(&mut self) -> Bytes {
        match std::mem::take(self) {
            Outbox::Empty => Bytes::new(),
            Outbox::One(piece) => piece,
            Outbox::Two(first, second) => {
                let mut joined = BytesMut::with_capacity(first.len() + second.len());
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&second);
                joined.freeze()
            }
            Outbox::Many(joined) => joined.freeze(),
        }
    }

    /// Sends the pieces to the client in one write, and empties the outbox once they went out
    /// (after a failed send the session ends with the error, so what is left does not matter).
    pub async fn send(&mut self, client: &mut Stream) -> std::io::Result<()> {
        let (first, second): (&[u8], &[u8]) = match self {
            Outbox::Empty => return Ok(()),
            Outbox::One(piece) => (piece, &[]),
            Outbox::Two(first, second) => (first, second),
            Outbox::Many(joined) => (joined, &[]),
        };
        client.send_two(first, second).await?;
        *self = Outbox::Empty;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(outbox: &mut Outbox, texts: &[&'static str]) {
        for t in texts {
            outbox.push(Bytes::from_static(t.as_bytes()));
        }
    }

    #[test]
    fn pieces_keep_their_order_however_many() {
        for n in 0..5 {
            let texts = ["1", "2T", "", "DC", "Z"];
            let mut outbox = Outbox::default();
            pieces(&mut outbox, &texts[..n]);
            assert_eq!(outbox.take(), texts[..n].concat().as_bytes(), "{n} pieces");
            assert!(outbox.take().is_empty(), "taking empties it");
        }
    }

    #[test]
    fn two_pieces_stay_apart_for_a_vectored_write() {
        let mut outbox = Outbox::default();
        pieces(&mut outbox, &["1", "2TDCZ"]);
        assert!(matches!(&outbox, Outbox::Two(a, b) if a == "1" && b == "2TDCZ"));
        pieces(&mut outbox, &["S"]);
        assert!(matches!(&outbox, Outbox::Many(joined) if joined == "12TDCZS"));
    }
}
