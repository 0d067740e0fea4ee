//! PAUSE and RESUME: new transactions of a paused database wait before taking a server
//! connection; running ones finish. One relaxed load per transaction while nothing is paused.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Which databases are paused; `None` in the set's place means all of them.
#[derive(Debug, Default)]
pub struct Pause {
    any: AtomicBool,
    all: AtomicBool,
    databases: Mutex<BTreeSet<String>>,
    resumed: Notify,
}

impl Pause {
    /// Pauses one database, or every one.
    pub fn pause(&self, database: Option<&str>) {
        match database {
            Some(db) => {
                self.databases.lock().insert(db.to_string());
            }
            None => self.all.store(true, Ordering::Relaxed),
        }
        self.any.store(true, Ordering::Release);
    }

    /// Resumes one database, or every one (which also clears single pauses).
    pub fn resume(&self, database: Option<&str>) {
        let mut databases = self.databases.lock();
        match database {
            Some(db) => {
                databases.remove(db);
            }
            None => {
                databases.clear();
                self.all.store(false, Ordering::Relaxed);
            }
        }
        self.any.store(!databases.is_empty() || self.all.load(Ordering::Relaxed), Ordering::Release);
        self.resumed.notify_waiters();
    }

    /// Whether new transactions of `database` must wait.
    pub fn is_paused(&self, database: &str) -> bool {
        self.any.load(Ordering::Acquire)
            && (self.all.load(Ordering::Relaxed) || self.databases.lock().contains(database))
    }

    /// Returns once `database` is not paused.
    pub async fn wait(&self, database: &str) {
        loop {
            let resumed = self.resumed.notified();
            tokio::pin!(resumed);
            resumed.as_mut().enable();
            if !self.is_paused(database) {
                return;
            }
            resumed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pause_one_or_all_then_resume() {
        let p = std::sync::Arc::new(Pause::default());
        assert!(!p.is_paused("a"));
        p.pause(Some("a"));
        assert!(p.is_paused("a") && !p.is_paused("b"));
        let waiter = tokio::spawn({
            let p = p.clone();
            async move { p.wait("a").await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        p.resume(Some("a"));
        waiter.await.unwrap();
        p.pause(None);
        assert!(p.is_paused("b"));
        p.resume(None);
        assert!(!p.is_paused("b"));
    }
}
