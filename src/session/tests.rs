//! The size of a request's future: allocated and copied for every request, so it holds only
//! what most requests await.

use std::future::Future;

use super::request::Batch;
use super::Session;

/// The size of the future `serve` returns, without a session to call it on.
fn serve_future_size<'a, F: Future + 'a>(_: impl FnOnce(&'a mut Session, Batch) -> F) -> usize {
    std::mem::size_of::<F>()
}

/// glibc keeps freed blocks of up to this many bytes in a per-thread cache: a request future
/// that fits is allocated and freed in a few dozen instructions, one that does not goes through
/// the allocator's bins (~400 more per request, measured by callgrind).
const GLIBC_TCACHE_MAX: usize = 1032;

#[test]
fn a_request_future_fits_the_allocators_thread_cache() {
    // 904 bytes measured in a release build (ARCHITECTURE.md, "Cost of one request"). A change
    // that grows it past glibc's per-thread cache makes every request pay for a trip through
    // malloc's bins: box what it added, if that is a path few requests take.
    let size = serve_future_size(Session::serve);
    eprintln!("request future: {size} bytes");
    assert!(size <= GLIBC_TCACHE_MAX, "the request future grew to {size} bytes");
}
