//! The checkout guard: a server connection on loan to one session. Dropping it gives the connection
//! back clean, cleans it in the background first, or discards it — never returns it dirty.

use std::ops::{Deref, DerefMut};

use super::Pool;
use crate::server::ServerConn;

/// A server connection on loan from a [`Pool`].
pub struct Checkout {
    conn: Option<Box<ServerConn>>,
    pool: Pool,
}

impl Checkout {
    pub(super) fn new(conn: Box<ServerConn>, pool: Pool) -> Self {
        Checkout { conn: Some(conn), pool }
    }

    /// The pool the connection came from.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

impl Deref for Checkout {
    type Target = ServerConn;
    fn deref(&self) -> &ServerConn {
        // The option is only emptied in drop.
        self.conn.as_ref().expect("checkout holds a connection until dropped")
    }
}

impl DerefMut for Checkout {
    fn deref_mut(&mut self) -> &mut ServerConn {
        self.conn.as_mut().expect("checkout holds a connection until dropped")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if conn.is_clean() {
            return self.pool.checkin(conn);
        }
        if !conn.is_resettable() {
            return self.pool.discard(conn);
        }
        // A transaction is open or a session reset is owed: clean up off the client's path.
        let pool = self.pool.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move { reset_and_return(pool, conn).await });
            }
            Err(_) => pool.discard(conn),
        }
    }
}

/// Rolls back and, for session pooling, runs DISCARD ALL; returns the connection if that worked.
async fn reset_and_return(pool: Pool, mut conn: Box<ServerConn>) {
    let mut ok = true;
    if conn.status() != b'I' {
        ok = conn.run_internal("ROLLBACK").await.is_ok();
    }
    if ok && conn.needs_reset() {
        ok = conn.run_internal("DISCARD ALL").await.is_ok();
        conn.discarded_all();
    }
    if ok && conn.is_clean() {
        pool.checkin(conn);
    } else {
        tracing::debug!(pool = %pool.key(), "discarding server connection that could not be reset");
        pool.discard(conn);
    }
}
