//! For the criterion benches of the per-request path only (`benches/request.rs`): what the
//! sends and reads of a connection do to it, minus the socket, so the path can be timed and its
//! allocations counted without a server. Not used by pgsplit itself.

use super::{ServerConn, READ_RESERVE};
use crate::protocol::frame::messages;
use crate::protocol::from_client::Pipeline;
use crate::server::outgoing::{Outgoing, Owed};

impl ServerConn {
    /// As a read that brought `bytes` would leave the read buffer (`read_more`: room reserved,
    /// then filled).
    #[doc(hidden)]
    pub fn feed_for_bench(&mut self, bytes: &[u8]) {
        self.read_buf.reserve(READ_RESERVE);
        self.read_buf.extend_from_slice(bytes);
    }

    /// What `send_outgoing` does for `out` but the socket write: its replies are expected and the
    /// pipeline noted. Borrows `out` so one rewrite can be owed again and again.
    #[doc(hidden)]
    pub fn owe_for_bench(&mut self, out: &Outgoing, pipeline: Pipeline) {
        for owed in &out.owed {
            match owed {
                Owed::Client { tag, first } => self.owed.push_client(*tag, &[*first]),
                Owed::Own { kind, fate, prepares } => self.owed.push(*kind, fate.clone(), *prepares),
            }
        }
        self.note_sent_for_bench(out.bytes.len(), pipeline);
    }

    /// What `send` does for client messages sent as received, but the socket write.
    #[doc(hidden)]
    pub fn owe_sent_for_bench(&mut self, bytes: &[u8], pipeline: Pipeline) {
        for (tag, body) in messages(bytes) {
            self.owed.push_client(tag, body);
        }
        self.note_sent_for_bench(bytes.len(), pipeline);
    }

    /// `send_raw` and `write` up to the socket: the pipeline, the latency clock, the byte count.
    fn note_sent_for_bench(&mut self, len: usize, pipeline: Pipeline) {
        match pipeline {
            Pipeline::Open => self.unsynced = true,
            Pipeline::Closed => self.unsynced = false,
            Pipeline::Unchanged => {}
        }
        self.busy_since.get_or_insert_with(std::time::Instant::now);
        self.counters.sent_bytes.fetch_add(len as u64, std::sync::atomic::Ordering::Relaxed);
    }
}
