//! Giving memory back once many clients have left. glibc keeps freed memory in its heap for
//! reuse: after a storm of thousands of logins has gone, the process would stay at its peak.
//! `malloc_trim` hands the free pages back to the OS; it runs only when the number of clients
//! fell by many since the last time, so it costs nothing in steady state.

use std::sync::Arc;
use std::time::Duration;

use crate::state::Shared;

/// Clients that must have left since the last trim before trimming again.
const LEFT_BEFORE_TRIM: usize = 500;

/// Checks every `period` until the task is dropped.
pub async fn return_memory(ctx: Arc<Shared>, period: Duration) {
    let mut peak = 0;
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let now = ctx.clients.len();
        peak = peak.max(now);
        if peak - now >= LEFT_BEFORE_TRIM {
            trim();
            tracing::debug!(left = peak - now, "returned freed memory to the OS");
            peak = now;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks glibc's own heap bookkeeping under its locks; it takes no
    // pointers from us.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
