//! Who is connected: one entry per logged-in client, for SHOW CLIENTS and the client gauges. A
//! session updates its own entry's state with one relaxed store per request. The registry also
//! tells idle sessions that pgsplit is closing ([`ClientRegistry::close`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

use super::cancel;
use crate::config::{DatabaseSettings, UserSettings};

/// What a client is doing now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ClientState {
    /// Between requests, holding no server connection (or a pinned idle one).
    Idle = 0,
    /// Waiting for a server connection.
    Waiting = 1,
    /// Running a request or inside a transaction.
    Active = 2,
}

impl ClientState {
    /// The label used in metrics and SHOW CLIENTS.
    pub fn label(self) -> &'static str {
        match self {
            ClientState::Idle => "idle",
            ClientState::Waiting => "waiting",
            ClientState::Active => "active",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => ClientState::Waiting,
            2 => ClientState::Active,
            _ => ClientState::Idle,
        }
    }
}

/// One connected client. Its user and database are the configuration's shared settings, not
/// copies of their names: an idle client's entry is one small allocation.
#[derive(Debug)]
pub struct ClientEntry {
    pub id: u64,
    pub addr: Option<SocketAddr>,
    user: Arc<UserSettings>,
    database: Arc<DatabaseSettings>,
    pub application_name: Box<str>,
    pub connected_at: SystemTime,
    pub tls: bool,
    state: AtomicU8,
    /// Its cancel target: the server connection it holds, if any.
    target: cancel::Slot,
    /// Wakes the session's wait between transactions when pgsplit closes.
    closing: AtomicWaker,
}

impl ClientEntry {
    /// The user it logged in as.
    pub fn user(&self) -> &str {
        &self.user.name
    }

    /// The database it connected to (the name clients use).
    pub fn database(&self) -> &str {
        &self.database.name
    }

    /// The client's current state.
    pub fn state(&self) -> ClientState {
        ClientState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// The node it is linked to now: the one a cancel would go to.
    pub fn server(&self) -> Option<Arc<str>> {
        self.target.lock().as_ref().map(|t| t.addr.clone())
    }
}

/// Every connected client.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    clients: Mutex<BTreeMap<u64, Arc<ClientEntry>>>,
    /// Connections accepted and not yet closed: logging in, logged in, or on the console.
    open: AtomicUsize,
    /// Connections serving the admin console.
    consoles: AtomicUsize,
    /// pgsplit is shutting down: sessions between transactions end.
    closed: AtomicBool,
}

/// Counts one open connection (accepted, or on the console) until dropped.
#[derive(Debug)]
pub struct Open {
    registry: Arc<ClientRegistry>,
    console: bool,
}

impl Drop for Open {
    fn drop(&mut self) {
        let count = if self.console { &self.registry.consoles } else { &self.registry.open };
        count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How many client connections are in each stage, for SHOW LISTS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connections {
    /// Every accepted connection not yet closed.
    pub open: usize,
    /// Connections still in the handshake or login.
    pub logging_in: usize,
}

/// What a new entry says about its client.
pub struct NewClient {
    pub id: u64,
    pub addr: Option<SocketAddr>,
    pub user: Arc<UserSettings>,
    pub database: Arc<DatabaseSettings>,
    pub application_name: Box<str>,
    pub tls: bool,
    /// The session's cancel target ([`super::cancel::CancelHandle::slot`]).
    pub target: cancel::Slot,
}

impl ClientRegistry {
    /// Adds a client; the returned slot removes it when dropped.
    pub fn join(self: &Arc<Self>, new: NewClient) -> ClientSlot {
        let entry = Arc::new(ClientEntry {
            id: new.id,
            addr: new.addr,
            user: new.user,
            database: new.database,
            application_name: new.application_name,
            connected_at: SystemTime::now(),
            tls: new.tls,
            state: AtomicU8::new(ClientState::Idle as u8),
            target: new.target,
            closing: AtomicWaker::new(),
        });
        self.clients.lock().insert(new.id, entry.clone());
        ClientSlot { registry: self.clone(), entry }
    }

    /// Counts an accepted connection until the returned guard drops.
    pub fn accepted(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, Ordering::Relaxed);
        Open { registry: self.clone(), console: false }
    }

    /// Counts a connection serving the console until the returned guard drops.
    pub fn console(self: &Arc<Self>) -> Open {
        self.consoles.fetch_add(1, Ordering::Relaxed);
        Open { registry: self.clone(), console: true }
    }

    /// Open connections, and those not logged in yet: neither a session nor the console.
    pub fn connections(&self) -> Connections {
        let open = self.open.load(Ordering::Relaxed);
        let settled = self.len() + self.consoles.load(Ordering::Relaxed);
        Connections { open, logging_in: open.saturating_sub(settled) }
    }

    /// A copy of the list.
    pub fn list(&self) -> Vec<Arc<ClientEntry>> {
        self.clients.lock().values().cloned().collect()
    }

    /// How many clients are connected.
    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    /// Whether no client is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// pgsplit is shutting down: wakes every session waiting between transactions, which then
    /// ends ([`ClientSlot::closing`]). A wait that begins later sees it at once.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for entry in self.clients.lock().values() {
            entry.closing.wake();
        }
    }
}

/// A session's own entry; leaves the registry when dropped.
#[derive(Debug)]
pub struct ClientSlot {
    registry: Arc<ClientRegistry>,
    entry: Arc<ClientEntry>,
}

impl ClientSlot {
    /// The client as listed.
    pub fn entry(&self) -> &ClientEntry {
        &self.entry
    }

    /// Records what the client is doing.
    pub fn set_state(&self, state: ClientState) {
        self.entry.state.store(state as u8, Ordering::Relaxed);
    }

    /// Ready once pgsplit is closing. A `select!` branch beside a session's read between
    /// transactions. Rather than a cancellation token's wait, which joins and leaves one list
    /// shared by every client (a lock each way) on every request: this keeps the task's waker
    /// in the client's own entry, and stores nothing when the waker is the one kept.
    pub fn closing(&self) -> Closing<'_> {
        Closing { slot: self }
    }
}

/// See [`ClientSlot::closing`].
#[must_use = "futures do nothing unless awaited"]
pub struct Closing<'a> {
    slot: &'a ClientSlot,
}

impl Future for Closing<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // The waker first, then the flag: a `close` between the two wakes this task again.
        self.slot.entry.closing.register(cx.waker());
        match self.slot.registry.closed.load(Ordering::SeqCst) {
            true => Poll::Ready(()),
            false => Poll::Pending,
        }
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.registry.clients.lock().remove(&self.entry.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client of user `app` on database `app`, numbered `id`.
    fn new(id: u64) -> NewClient {
        let config = "[[users]]\nname = \"app\"\npassword = \"pw\"\n[databases.app]\nprimary = \"127.0.0.1:5432\"\n";
        let settings = crate::config::from_str(config, "test").unwrap();
        NewClient {
            id,
            addr: None,
            user: settings.users["app"].clone(),
            database: settings.databases["app"].clone(),
            application_name: "".into(),
            tls: false,
            target: cancel::Slot::default(),
        }
    }

    #[test]
    fn slots_join_and_leave() {
        let registry = Arc::new(ClientRegistry::default());
        let a = registry.join(new(1));
        let b = registry.join(new(2));
        a.set_state(ClientState::Waiting);
        assert_eq!(registry.list()[0].state(), ClientState::Waiting);
        assert_eq!((registry.list()[1].user(), registry.list()[1].database()), ("app", "app"));
        drop(a);
        assert_eq!(registry.len(), 1);
        drop(b);
        assert!(registry.is_empty());
    }

    /// Counts its wakes.
    struct Wakes(AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn closing_wakes_waiting_sessions_and_answers_later_ones_at_once() {
        let registry = Arc::new(ClientRegistry::default());
        let waiting = registry.join(new(1));
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut wait = std::pin::pin!(waiting.closing());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        assert!(wait.as_mut().poll(&mut cx).is_pending(), "polled again, still open");
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
        registry.close();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "the waiting session is woken");
        assert!(wait.as_mut().poll(&mut cx).is_ready());
        let later = registry.join(new(2));
        assert!(std::pin::pin!(later.closing()).poll(&mut cx).is_ready());
    }
}
