//! For the criterion benches of the per-request path only (`benches/request.rs`): a send minus the
//! socket write, and a read minus the socket, so the path can be timed and its allocations
//! counted without a server. Each calls the same steps the real send and read take.

use super::{ServerConn, READ_RESERVE};
use crate::protocol::from_client::Pipeline;
use crate::server::outgoing::Outgoing;

impl ServerConn {
    /// As a read that brought `bytes` leaves the read buffer (`read_more`: room reserved, filled).
    #[doc(hidden)]
    pub fn feed_for_bench(&mut self, bytes: &[u8]) {
        self.read_buf.reserve(READ_RESERVE);
        self.read_buf.extend_from_slice(bytes);
    }

    /// `send_outgoing` but the socket write.
    #[doc(hidden)]
    pub fn send_outgoing_for_bench(&mut self, mut out: Outgoing, pipeline: Pipeline) {
        self.expect_outgoing(&mut out, pipeline);
        self.note_write(out.bytes.len());
        self.keep_spare(out);
    }

    /// `send` but the socket write.
    #[doc(hidden)]
    pub fn send_for_bench(&mut self, bytes: &[u8], pipeline: Pipeline) {
        self.expect_sent(bytes, pipeline);
        self.note_write(bytes.len());
    }
}
