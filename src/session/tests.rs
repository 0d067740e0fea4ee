//! The size of a request's future: allocated and copied for every request, so it holds only
//! what most requests await.

use std::future::Future;

use super::request::Batch;
use super::Session;

/// The size of the future `serve` returns, without a session to call it on.
fn serve_future_size<'a, F: Future + 'a>(_: impl FnOnce(&'a mut Session, Batch) -> F) -> usize {
    std::mem::size_of::<F>()
}

#[test]
fn a_request_future_holds_no_room_for_rare_paths() {
    // Checkout, rewrite and relay take 1.4 kB; with the relay's rare paths (drains, a
    // pipelining client's next batch) inline it was 1.8 kB. A rare path awaited inline may take
    // its own room in every request: box it (see `Session::relay`).
    let size = serve_future_size(Session::serve);
    assert!(size <= 1536, "the request future grew to {size} bytes");
}
