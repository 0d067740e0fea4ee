//! Cancel keys: pgsplit hands each client a key of its own and remembers which server connection,
//! if any, that client is using, so a CancelRequest reaches the query it means.
//!
//! A key is a random process id (31 bits) and a random secret (32 bits) from the thread's CSPRNG.
//! Protocol 3.0 allows no longer secret, so guessing is bounded instead: a client's key stops
//! honouring cancels after [`MAX_WRONG_SECRETS`] wrong secrets for its process id (odds of a
//! guess getting through: under 2^-25), and at most one cancel per key is on its way to a server
//! at a time. Each request costs one map lookup under a lock never held across an await.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::Rng;

use crate::server::connect::send_cancel;
use crate::server::BackendKey;
use crate::tls::ServerTls;

/// Wrong secrets for one process id after which its key honours no more cancels. A client
/// always sends its own key right, so only a guesser reaches this; it costs the client its
/// cancels, never a query.
pub const MAX_WRONG_SECRETS: u32 = 64;

/// Longest a forwarded cancel may take (connect and delivery) before it is given up.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a client's running query lives.
#[derive(Clone, Debug)]
pub struct CancelTarget {
    pub addr: Arc<str>,
    pub key: BackendKey,
}

/// A client's cancel target, shared by its cancel key's entry, its session and its entry in
/// the list of clients (which shows the node from it).
pub type Slot = Arc<Mutex<Option<CancelTarget>>>;

/// One registered key.
struct Entry {
    secret: i32,
    slot: Slot,
    /// Wrong secrets sent for this process id so far.
    wrong: u32,
    /// A cancel for this key is being forwarded; others wait for it to finish.
    forwarding: bool,
}

/// What became of one CancelRequest; said in logs, and what tests check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// No client has this process id.
    UnknownKey,
    /// The process id is a client's but the secret is wrong.
    WrongSecret,
    /// The key took too many wrong secrets: cancels for it are ignored.
    Locked,
    /// The key is right; the client runs nothing on a server.
    Idle,
    /// The key is right and a cancel for it is already on its way.
    AlreadyForwarding,
    /// Sent to the server running the client's query.
    Forwarded,
}

impl CancelOutcome {
    /// The outcome as logs spell it.
    pub fn name(self) -> &'static str {
        match self {
            CancelOutcome::UnknownKey => "unknown_key",
            CancelOutcome::WrongSecret => "wrong_secret",
            CancelOutcome::Locked => "locked",
            CancelOutcome::Idle => "idle",
            CancelOutcome::AlreadyForwarding => "already_forwarding",
            CancelOutcome::Forwarded => "forwarded",
        }
    }
}

/// Every live client's cancel key.
pub struct CancelRegistry {
    entries: Mutex<HashMap<i32, Entry>>,
    /// Cancels reach servers the way queries do.
    tls: ServerTls,
}

/// A client's registration; unregisters on drop.
pub struct CancelHandle {
    registry: Arc<CancelRegistry>,
    /// The key given to the client.
    pub key: BackendKey,
    slot: Slot,
}

impl CancelRegistry {
    /// An empty registry whose forwarded cancels use `tls`.
    pub fn new(tls: ServerTls) -> Self {
        CancelRegistry { entries: Mutex::default(), tls }
    }

    /// Registers a new client under a fresh random key.
    pub fn register(self: &Arc<Self>) -> CancelHandle {
        let slot: Slot = Arc::default();
        let mut rng = rand::thread_rng();
        let mut entries = self.entries.lock();
        let pid = loop {
            let pid = rng.gen_range(1..i32::MAX);
            if !entries.contains_key(&pid) {
                break pid;
            }
        };
        let secret = rng.gen::<i32>();
        entries.insert(pid, Entry { secret, slot: slot.clone(), wrong: 0, forwarding: false });
        CancelHandle { registry: self.clone(), key: BackendKey { pid, secret }, slot }
    }

    /// Forwards a client's CancelRequest to the server running its query, if the key matches.
    pub async fn cancel(&self, key: BackendKey) -> CancelOutcome {
        let target = match self.check(key) {
            Ok(target) => target,
            Err(outcome) => {
                tracing::debug!(outcome = outcome.name(), "cancel request not forwarded");
                return outcome;
            }
        };
        let sent = tokio::time::timeout(FORWARD_TIMEOUT, send_cancel(&target.addr, target.key, &self.tls)).await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(server = %target.addr, error = %e, "cannot forward cancel request"),
            Err(_) => {
                let timeout_ms = FORWARD_TIMEOUT.as_millis() as u64;
                tracing::warn!(server = %target.addr, timeout_ms, "cancel request not delivered in time")
            }
        }
        if let Some(entry) = self.entries.lock().get_mut(&key.pid) {
            entry.forwarding = false;
        }
        CancelOutcome::Forwarded
    }

    /// Checks a key; the target to forward to (marked as forwarding), or why there is none.
    fn check(&self, key: BackendKey) -> Result<CancelTarget, CancelOutcome> {
        let mut entries = self.entries.lock();
        let entry = entries.get_mut(&key.pid).ok_or(CancelOutcome::UnknownKey)?;
        if entry.wrong >= MAX_WRONG_SECRETS {
            return Err(CancelOutcome::Locked);
        }
        // No early exit on the first differing bit: the time taken says nothing about the secret.
        if std::hint::black_box(entry.secret ^ key.secret) != 0 {
            entry.wrong += 1;
            if entry.wrong == MAX_WRONG_SECRETS {
                tracing::warn!(
                    wrong = entry.wrong,
                    "a client's cancel key took too many wrong secrets; its cancels are now ignored"
                );
            }
            return Err(CancelOutcome::WrongSecret);
        }
        if entry.forwarding {
            return Err(CancelOutcome::AlreadyForwarding);
        }
        let target = entry.slot.lock().clone().ok_or(CancelOutcome::Idle)?;
        entry.forwarding = true;
        Ok(target)
    }
}

impl CancelHandle {
    /// Records the server connection the client is now using (`None` when it has none).
    pub fn set_target(&self, target: Option<CancelTarget>) {
        *self.slot.lock() = target;
    }

    /// The target's slot, for the client's entry in the list of clients.
    pub fn slot(&self) -> Slot {
        self.slot.clone()
    }
}

impl Drop for CancelHandle {
    fn drop(&mut self) {
        self.registry.entries.lock().remove(&self.key.pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Arc<CancelRegistry> {
        Arc::new(CancelRegistry::new(ServerTls::disabled()))
    }

    #[test]
    fn keys_are_distinct_and_random() {
        let registry = registry();
        let handles: Vec<_> = (0..1000).map(|_| registry.register()).collect();
        let pids: std::collections::HashSet<_> = handles.iter().map(|h| h.key.pid).collect();
        let secrets: std::collections::HashSet<_> = handles.iter().map(|h| h.key.secret).collect();
        assert_eq!(pids.len(), 1000);
        assert!(secrets.len() > 990, "secrets repeat: {}", secrets.len());
        assert!(handles.iter().all(|h| h.key.pid > 0));
        drop(handles);
        assert!(registry.entries.lock().is_empty(), "dropped handles unregister");
    }

    #[test]
    fn a_right_key_is_told_from_wrong_ones() {
        let registry = registry();
        let handle = registry.register();
        let key = handle.key;
        let wrong = BackendKey { pid: key.pid, secret: key.secret.wrapping_add(1) };
        assert_eq!(
            registry.check(BackendKey { pid: key.pid.wrapping_add(1), secret: key.secret }).err(),
            Some(CancelOutcome::UnknownKey)
        );
        assert_eq!(registry.check(wrong).err(), Some(CancelOutcome::WrongSecret));
        assert_eq!(registry.check(key).err(), Some(CancelOutcome::Idle));
        let target = CancelTarget { addr: "127.0.0.1:1".into(), key: BackendKey { pid: 7, secret: 9 } };
        handle.set_target(Some(target));
        assert_eq!(registry.check(key).map(|t| t.key), Ok(BackendKey { pid: 7, secret: 9 }));
        assert_eq!(registry.check(key).err(), Some(CancelOutcome::AlreadyForwarding), "one at a time per key");
    }

    #[test]
    fn brute_force_locks_the_key_instead_of_finding_it() {
        let registry = registry();
        let handle = registry.register();
        let key = handle.key;
        handle.set_target(Some(CancelTarget { addr: "127.0.0.1:1".into(), key: BackendKey::default() }));
        let mut guesses = (0..).map(|i: i32| key.secret.wrapping_add(1).wrapping_add(i));
        for _ in 0..MAX_WRONG_SECRETS {
            let guess = BackendKey { pid: key.pid, secret: guesses.next().unwrap() };
            assert_eq!(registry.check(guess).err(), Some(CancelOutcome::WrongSecret));
        }
        for _ in 0..2000 {
            let guess = BackendKey { pid: key.pid, secret: guesses.next().unwrap() };
            assert_eq!(registry.check(guess).err(), Some(CancelOutcome::Locked));
        }
        assert_eq!(registry.check(key).err(), Some(CancelOutcome::Locked), "even the right secret, once locked");
        let other = registry.register();
        other.set_target(Some(CancelTarget { addr: "127.0.0.1:1".into(), key: BackendKey::default() }));
        assert!(registry.check(other.key).is_ok(), "other clients' keys are untouched");
    }
}
