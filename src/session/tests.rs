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
    // 1,792 bytes measured (ARCHITECTURE.md, "Cost of one request"). A change that grows it
    // past 2 kB makes every request copy and allocate more: box what it added, unless that
    // runs per request for some clients (a pipelining client's next batch stays inline:
    // boxed, it would allocate for each).
    let size = serve_future_size(Session::serve);
    assert!(size <= 2048, "the request future grew to {size} bytes");
}
