//! Which server connections a pool has open, for SHOW SERVERS. Each connection carries a slot
//! that takes it off the list when the connection is dropped, however it ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;

/// One open server connection.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    /// The server's process id.
    pub pid: i32,
    pub connected_at: SystemTime,
    pub tls: bool,
    /// The login was SCRAM-SHA-256-PLUS, bound to the TLS connection.
    pub channel_binding: bool,
}

/// The open connections of one pool, by server process id.
pub type ServerList = Arc<Mutex<BTreeMap<i32, ServerInfo>>>;

/// A connection's place on its pool's list.
#[derive(Debug)]
pub struct ServerSlot {
    list: ServerList,
    pid: i32,
}

impl ServerSlot {
    /// Puts a connection on the list.
    pub fn new(list: &ServerList, info: ServerInfo) -> Self {
        let pid = info.pid;
        list.lock().insert(pid, info);
        ServerSlot { list: list.clone(), pid }
    }
}

impl Drop for ServerSlot {
    fn drop(&mut self) {
        self.list.lock().remove(&self.pid);
    }
}
