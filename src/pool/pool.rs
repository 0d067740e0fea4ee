//! One pool: idle connections (LIFO, so the warmest is reused and the rest can age out), a cap on
//! connections, and clients waiting in line who are handed connections directly at checkin.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::oneshot;
use tracing::Instrument;

use super::{Checkout, PoolError};
use crate::config::{PassthroughSecret, PoolSettings};
use crate::server::counters::PoolCounters;
use crate::server::list::{ServerInfo, ServerList, ServerSlot};
use crate::server::{self, ServerConn, ServerLogin};

/// What a pool serves: one node, one server database, one server user.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub node: Arc<str>,
    pub database: String,
    pub user: String,
}

impl fmt::Display for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}/{}", self.user, self.node, self.database)
    }
}

/// A cheap handle to one pool.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

/// `max_lifetime` and `idle_timeout` in nanoseconds: read with two plain loads.
struct Lifetimes {
    max_lifetime: AtomicU64,
    idle_timeout: AtomicU64,
}

impl Lifetimes {
    fn new(settings: &PoolSettings) -> Self {
        let l = Lifetimes { max_lifetime: AtomicU64::new(0), idle_timeout: AtomicU64::new(0) };
        l.set(settings);
        l
    }

    fn set(&self, settings: &PoolSettings) {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.max_lifetime.store(nanos(settings.max_lifetime), Ordering::Relaxed);
        self.idle_timeout.store(nanos(settings.idle_timeout), Ordering::Relaxed);
    }

    fn max_lifetime(&self) -> Duration {
        Duration::from_nanos(self.max_lifetime.load(Ordering::Relaxed))
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_nanos(self.idle_timeout.load(Ordering::Relaxed))
    }
}

struct Inner {
    key: PoolKey,
    /// `primary` or `replica`, for observation.
    role: &'static str,
    counters: Arc<PoolCounters>,
    /// Every connection open now, idle or lent.
    servers: ServerList,
    /// Swapped when a looked-up user's password changed ([`Pool::renew_passthrough`]).
    login: ArcSwap<ServerLogin>,
    /// Made for a looked-up user or a `"*"` database: dropped once nobody uses it.
    on_demand: bool,
    /// The cap on connections; a reload may change it.
    size: AtomicUsize,
    /// Timeouts and lifetimes; a reload may replace them.
    settings: ArcSwap<PoolSettings>,
    /// The two of them every checkout and checkin reads, where a load of `settings` would cost
    /// more than the rest of the freshness test.
    lifetimes: Lifetimes,
    state: Mutex<State>,
    /// Connections lent out (`total` less the idle ones), published by [`Locked`] on release.
    in_use: AtomicUsize,
    /// The parameters the newest connection reported at login: what a new client is told at its
    /// own login, so logging in needs no server connection once the pool has opened one.
    login_params: Mutex<Option<Arc<BTreeMap<String, String>>>>,
    /// Connects failed since the last one that worked: only the first of an outage is a warning.
    failed_connects: AtomicU32,
}

#[derive(Default)]
struct State {
    /// Boxed, as everywhere in the pool: a connection moves to a checkout as a pointer.
    #[allow(clippy::vec_box)]
    idle: Vec<Box<ServerConn>>,
    /// Connections open or being opened, idle or not.
    total: usize,
    /// Connections being opened now.
    connecting: usize,
    waiters: VecDeque<oneshot::Sender<Box<ServerConn>>>,
    closed: bool,
    /// Connections opened up to then are not reused: their node changed role (deposed, fenced).
    retired_before: Option<Instant>,
}

/// The state under its lock. Releasing it publishes how many connections are lent out, the one
/// count read outside the lock.
struct Locked<'a> {
    st: MutexGuard<'a, State>,
    in_use: &'a AtomicUsize,
}

impl Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.st
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.st
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.in_use.store(self.st.total.saturating_sub(self.st.idle.len()), Ordering::Relaxed);
    }
}

/// Counts for observation and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    pub idle: usize,
    pub total: usize,
    pub connecting: usize,
    pub waiting: usize,
    pub size: usize,
}

impl Pool {
    /// A new, empty pool whose connections count into `counters`; they open on demand.
    /// `on_demand`: the pool was made for a looked-up user or a `"*"` database, and goes once
    /// nobody uses it.
    pub fn with_counters(
        key: PoolKey,
        role: &'static str,
        counters: Arc<PoolCounters>,
        login: ServerLogin,
        size: usize,
        settings: PoolSettings,
        on_demand: bool,
    ) -> Self {
        let state = Mutex::default();
        let servers = ServerList::default();
        let inner = Inner {
            key,
            role,
            counters,
            servers,
            on_demand,
            login: ArcSwap::from_pointee(login),
            size: AtomicUsize::new(size),
            lifetimes: Lifetimes::new(&settings),
            settings: ArcSwap::from_pointee(settings),
            state,
            in_use: AtomicUsize::new(0),
            login_params: Mutex::default(),
            failed_connects: AtomicU32::new(0),
        };
        Pool { inner: Arc::new(inner) }
    }

    /// `primary` or `replica`.
    pub fn role(&self) -> &'static str {
        self.inner.role
    }

    /// Every open connection, with whether it is idle now.
    pub fn servers(&self) -> Vec<(ServerInfo, bool)> {
        let idle: Vec<i32> = self.state().idle.iter().map(|c| c.key().pid).collect();
        let list = self.inner.servers.lock();
        list.values().map(|info| (info.clone(), idle.contains(&info.pid))).collect()
    }

    /// What the pool's connections did so far.
    pub fn counters(&self) -> &PoolCounters {
        &self.inner.counters
    }

    /// The pool's key.
    pub fn key(&self) -> &PoolKey {
        &self.inner.key
    }

    /// Whether `other` is this very pool (not one of the same key made since).
    pub fn same(&self, other: &Pool) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The parameters a server connection of this pool reports at login, once one has opened.
    pub fn login_params(&self) -> Option<Arc<BTreeMap<String, String>>> {
        self.inner.login_params.lock().clone()
    }

    /// Current counts.
    pub fn stats(&self) -> PoolStats {
        let st = self.state();
        PoolStats {
            idle: st.idle.len(),
            total: st.total,
            connecting: st.connecting,
            waiting: st.waiters.iter().filter(|w| !w.is_closed()).count(),
            size: self.size(),
        }
    }

    /// Server connections lent out now, for least-busy balancing: read on every routed read,
    /// for each candidate node, so one load rather than the lock.
    pub fn in_use(&self) -> usize {
        self.inner.in_use.load(Ordering::Relaxed)
    }

    /// The state, locked.
    fn state(&self) -> Locked<'_> {
        Locked { st: self.inner.state.lock(), in_use: &self.inner.in_use }
    }

    /// Gets a connection: an idle one, a new one while under the cap, or the next one checked in,
    /// waiting at most `checkout_timeout`.
    pub async fn checkout(&self) -> Result<Checkout, PoolError> {
        let now = Instant::now();
        let waiter = {
            let mut st = self.state();
            if st.closed {
                return Err(PoolError::Closed(self.inner.key.to_string()));
            }
            while let Some(mut conn) = st.idle.pop() {
                if self.is_fresh(&conn, now) && conn.is_alive() {
                    // At hand: no wait to time, so no second clock read.
                    self.inner.counters.checked_out(Duration::ZERO);
                    return Ok(Checkout::new(conn, self.clone()));
                }
                st.total -= 1;
            }
            if st.total < self.size() {
                st.total += 1;
                None
            } else {
                let (tx, rx) = oneshot::channel();
                st.waiters.push_back(tx);
                Some(rx)
            }
        };
        let checkout = match waiter {
            // Boxed: opening (TLS, login) is a deep future every checkout would carry otherwise.
            None => Box::pin(self.open()).await.map(|conn| Checkout::new(conn, self.clone())),
            // Boxed: only a full pool waits, and the wait's timer would size every checkout.
            Some(rx) => Box::pin(self.wait(rx, now)).await,
        };
        match &checkout {
            Ok(_) => self.inner.counters.checked_out(now.elapsed()),
            Err(PoolError::Exhausted { .. }) => {
                self.inner.counters.checkout_timeouts.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {}
        }
        checkout
    }

    async fn wait(&self, rx: oneshot::Receiver<Box<ServerConn>>, started: Instant) -> Result<Checkout, PoolError> {
        match tokio::time::timeout(self.inner.settings.load().checkout_timeout, rx).await {
            Ok(Ok(conn)) => Ok(Checkout::new(conn, self.clone())),
            Ok(Err(_)) => Err(PoolError::Closed(self.inner.key.to_string())),
            Err(_) => Err(PoolError::Exhausted {
                pool: self.inner.key.to_string(),
                size: self.size(),
                waited_ms: started.elapsed().as_millis() as u64,
            }),
        }
    }

    /// Opens a connection for a slot already counted in `total`; gives the slot back on failure.
    /// Boxed once here: a connection moves between the idle stack, waiters and checkouts as a
    /// pointer, and a session holding none stays small.
    /// Runs in a `server` span (inside the client's, when a client is waiting for it).
    async fn open(&self) -> Result<Box<ServerConn>, PoolError> {
        let key = &self.inner.key;
        let counters = &self.inner.counters;
        // Error-level, as the client span: enabled whenever a line inside it is.
        let span = tracing::error_span!("server", node = %key.node, database = %key.database, user = %key.user);
        self.state().connecting += 1;
        let login = self.inner.login.load_full();
        let connect = server::connect(key.node.clone(), &login, self.inner.settings.load().connect_timeout);
        let opened = connect.instrument(span.clone()).await;
        self.state().connecting -= 1;
        let _in_span = span.enter();
        match opened {
            Ok(mut conn) => {
                counters.connects.fetch_add(1, Ordering::Relaxed);
                self.note_connect_worked();
                let info = ServerInfo {
                    pid: conn.key().pid,
                    connected_at: std::time::SystemTime::now(),
                    tls: conn.is_tls(),
                    channel_binding: conn.channel_bound(),
                };
                conn.join_pool(self.inner.counters.clone(), ServerSlot::new(&self.inner.servers, info));
                *self.inner.login_params.lock() = Some(Arc::new(conn.login_params().clone()));
                Ok(Box::new(conn))
            }
            Err(e) => {
                counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                self.state().total -= 1;
                self.note_connect_failed(&e);
                Err(e.into())
            }
        }
    }

    /// Logs a failed connect: a warning for the first of an outage, debug for the rest, so a
    /// server that is down does not flood the log with one line per waiting client.
    fn note_connect_failed(&self, e: &server::ServerError) {
        if self.inner.failed_connects.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(error = %e, "cannot open server connection; more failures are logged at debug until one opens");
        } else {
            tracing::debug!(error = %e, "cannot open server connection");
        }
    }

    /// Logs a new connection, and the end of an outage if there was one.
    fn note_connect_worked(&self) {
        match self.inner.failed_connects.swap(0, Ordering::Relaxed) {
            0 => tracing::debug!("server connection opened"),
            failed => tracing::info!(failed, "server connection opened again after failed attempts"),
        }
    }

    /// Returns a clean connection: to the first live waiter, else to the idle stack.
    pub(super) fn checkin(&self, mut conn: Box<ServerConn>) {
        if !conn.back_in_pool(self.inner.lifetimes.max_lifetime()) {
            return self.discard(conn);
        }
        let mut st = self.state();
        if st.closed {
            st.total -= 1;
            return;
        }
        if st.retired_before.is_some_and(|before| conn.created() <= before) {
            drop(st);
            return self.discard(conn);
        }
        if st.total > self.size() && st.waiters.is_empty() {
            st.total -= 1;
            return;
        }
        while let Some(tx) = st.waiters.pop_front() {
            match tx.send(conn) {
                Ok(()) => return,
                Err(back) => conn = back,
            }
        }
        st.idle.push(conn);
    }

    /// Drops a connection that must not be reused; opens a replacement if clients are waiting.
    pub(super) fn discard(&self, conn: Box<ServerConn>) {
        drop(conn);
        let replace = {
            let mut st = self.state();
            st.total -= 1;
            st.waiters.retain(|w| !w.is_closed());
            let replace = !st.closed && !st.waiters.is_empty() && st.total < self.size();
            if replace {
                st.total += 1;
            }
            replace
        };
        if replace {
            let pool = self.clone();
            tokio::spawn(async move {
                if let Ok(conn) = pool.open().await {
                    pool.checkin(conn);
                }
            });
        }
    }

    /// Closes idle connections past `idle_timeout` or `max_lifetime`; returns how many.
    pub fn close_expired(&self) -> usize {
        let mut st = self.state();
        let before = st.idle.len();
        let now = Instant::now();
        st.idle.retain(|c| self.is_fresh(c, now));
        let closed = before - st.idle.len();
        st.total -= closed;
        closed
    }

    /// Closes every connection open now, idle ones at once and lent ones when they come back,
    /// and keeps lending new ones: the node lost the role it had (a primary deposed or gone), so
    /// a connection opened under the old role must not take another request. Returns how many
    /// idle ones closed.
    pub fn retire(&self) -> usize {
        let mut st = self.state();
        st.retired_before = Some(Instant::now());
        let idle = std::mem::take(&mut st.idle);
        st.total -= idle.len();
        idle.len()
    }

    /// Stops lending connections and closes the idle ones.
    pub fn close(&self) {
        let mut st = self.state();
        st.closed = true;
        let idle = std::mem::take(&mut st.idle);
        st.total -= idle.len();
        st.waiters.clear();
    }

    fn is_fresh(&self, conn: &ServerConn, now: Instant) -> bool {
        let l = &self.inner.lifetimes;
        !conn.expired(now, l.max_lifetime(), l.idle_timeout())
    }

    /// The cap on connections.
    pub fn size(&self) -> usize {
        self.inner.size.load(Ordering::Relaxed)
    }

    /// Changes the cap (a reload). Clients already waiting get new connections at once when the
    /// pool grows; when it shrinks, connections over the cap close as they come back idle.
    pub fn set_size(&self, size: usize) {
        let old = self.inner.size.swap(size, Ordering::Relaxed);
        if size > old {
            let opens = {
                let mut st = self.state();
                st.waiters.retain(|w| !w.is_closed());
                let n = st.waiters.len().min(size.saturating_sub(st.total));
                st.total += n;
                n
            };
            for _ in 0..opens {
                let pool = self.clone();
                tokio::spawn(async move {
                    if let Ok(conn) = pool.open().await {
                        pool.checkin(conn);
                    }
                });
            }
        }
    }

    /// Replaces the timeouts and lifetimes (a reload); connections and waits already under way
    /// keep the old ones.
    pub fn set_settings(&self, settings: PoolSettings) {
        self.inner.lifetimes.set(&settings);
        self.inner.settings.store(Arc::new(settings));
    }

    /// Whether the pool logs in with this user, password and database.
    pub fn logs_in_as(&self, user: &str, password: Option<&str>, database: &str) -> bool {
        let mine = self.inner.login.load();
        mine.user == user && mine.password.as_deref() == password && mine.database == database
    }

    /// Gives a looked-up user's pool the secret of the user's newest login: after a password
    /// change, connections opened from now on prove the new one, and those open stay (PostgreSQL
    /// keeps them too).
    pub fn renew_passthrough(&self, secret: &PassthroughSecret) {
        let login = self.inner.login.load();
        if login.passthrough.as_ref().is_some_and(|mine| mine != secret) {
            let renewed = ServerLogin { passthrough: Some(secret.clone()), ..ServerLogin::clone(&login) };
            self.inner.login.store(Arc::new(renewed));
        }
    }

    /// Made on demand (for a looked-up user or a `"*"` database).
    pub fn on_demand(&self) -> bool {
        self.inner.on_demand
    }

    /// Nobody holds this pool but the manager, and it has no connection: it can go.
    pub(super) fn unused(&self) -> bool {
        Arc::strong_count(&self.inner) == 1 && self.stats().total == 0
    }
}
