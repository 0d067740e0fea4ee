//! Cancel keys: pgsplit hands each client a key of its own and remembers which server connection,
//! if any, that client is using, so a CancelRequest reaches the query it means.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rand::Rng;

use crate::server::connect::send_cancel;
use crate::server::BackendKey;
use crate::tls::ServerTls;

/// Where a client's running query lives.
#[derive(Clone, Debug)]
pub struct CancelTarget {
    pub addr: Arc<str>,
    pub key: BackendKey,
}

type Slot = Arc<Mutex<Option<CancelTarget>>>;

/// Every live client's cancel key.
pub struct CancelRegistry {
    entries: Mutex<HashMap<i32, (i32, Slot)>>,
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
        entries.insert(pid, (secret, slot.clone()));
        CancelHandle { registry: self.clone(), key: BackendKey { pid, secret }, slot }
    }

    /// Forwards a client's CancelRequest to the server running its query, if the key matches.
    pub async fn cancel(&self, key: BackendKey) {
        let target = {
            let entries = self.entries.lock();
            match entries.get(&key.pid) {
                Some((secret, slot)) if *secret == key.secret => slot.lock().clone(),
                _ => None,
            }
        };
        if let Some(target) = target {
            if let Err(e) = send_cancel(&target.addr, target.key, &self.tls).await {
                tracing::warn!(server = %target.addr, error = %e, "cannot forward cancel request");
            }
        }
    }
}

impl CancelHandle {
    /// Records the server connection the client is now using (`None` when it has none).
    pub fn set_target(&self, target: Option<CancelTarget>) {
        *self.slot.lock() = target;
    }
}

impl Drop for CancelHandle {
    fn drop(&mut self) {
        self.registry.entries.lock().remove(&self.key.pid);
    }
}
