//! The distinct nodes the databases name, each sampled by one probe. Databases on the same nodes
//! share the probe's connection and its samples, so many databases (or a `"*"` database) cost
//! the servers no more monitor connections and queries than the nodes they run on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::beat::Beat;
use super::probe::{self, Pacing, ProbeLogin, SampleSlot};

/// What a database's round holds of one of its nodes: the latest sample, and a way to ask for
/// a new one.
#[derive(Clone, Default)]
pub struct NodeProbe {
    pub slot: SampleSlot,
    /// Makes the node's probe sample at once.
    pub wake: Arc<Notify>,
}

/// One node's probe before it starts.
struct Planned {
    /// The logins of the databases naming the node, one per server database, the first
    /// database's first: what a probe reads (role, LSNs, timeline, WAL receiver, standbys) is
    /// the node's, the same from any database; the others are for when the first refuses.
    logins: Vec<ProbeLogin>,
    /// The databases naming the node, in the order they joined: for log lines.
    databases: Vec<String>,
    probe: NodeProbe,
    /// The round of each of those databases, told when a sample lands.
    landed: Vec<Arc<Notify>>,
}

/// Every distinct node address, planned as databases join and started once all have.
#[derive(Default)]
pub struct Nodes {
    by_addr: BTreeMap<Arc<str>, Planned>,
}

impl Nodes {
    /// Subscribes database `db`'s round (`landed`) to the node at `addr`, planning its probe if
    /// no database named the node before; `login` is kept as a fallback if it names another
    /// server database.
    pub fn join(&mut self, addr: &str, db: &str, login: &ProbeLogin, landed: &Arc<Notify>) -> NodeProbe {
        let planned = self.by_addr.entry(Arc::from(addr)).or_insert_with(|| Planned {
            logins: Vec::new(),
            databases: Vec::new(),
            probe: NodeProbe::default(),
            landed: Vec::new(),
        });
        if !planned.logins.iter().any(|l| l.dbname == login.dbname) {
            planned.logins.push(login.clone());
        }
        if !planned.databases.iter().any(|d| d == db) {
            planned.databases.push(db.to_string());
            planned.landed.push(landed.clone());
        }
        planned.probe.clone()
    }

    /// How many probes [`Nodes::spawn`] starts.
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// Starts one probe per node, sampling on every `beat`; each stops when `shutdown` fires.
    pub fn spawn(self, beat: Beat, connect_timeout: Duration, shutdown: &CancellationToken) {
        for (addr, planned) in self.by_addr {
            let Planned { logins, databases, probe: NodeProbe { slot, wake }, landed } = planned;
            let pacing = Pacing { beat, connect_timeout, wake, landed: landed.into() };
            let run = probe::run_probe(addr, logins, pacing, slot);
            let shutdown = shutdown.clone();
            // Every line names the databases the node serves: a failing node affects them all.
            // Error-level, so that the span is never filtered out on its own.
            let span = tracing::error_span!("monitor", databases = %databases.join(","));
            let stoppable = async move {
                tokio::select! {
                    _ = run => {}
                    _ = shutdown.cancelled() => {}
                }
            };
            tokio::spawn(stoppable.instrument(span));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::ServerTls;

    fn login(dbname: &str) -> ProbeLogin {
        ProbeLogin { user: "mon".into(), password: None, dbname: dbname.into(), tls: ServerTls::disabled() }
    }

    #[test]
    fn databases_on_the_same_nodes_share_one_probe_per_node() {
        let mut nodes = Nodes::default();
        let (a, b) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let first: Vec<_> = ["p:1", "r:1", "r:2"].iter().map(|n| nodes.join(n, "a", &login("a"), &a)).collect();
        let second: Vec<_> = ["p:1", "r:2", "r:1"].iter().map(|n| nodes.join(n, "b", &login("b"), &b)).collect();
        assert_eq!(nodes.len(), 3);
        // The same slot and wake, whichever database asks and in whatever order it lists them.
        assert!(Arc::ptr_eq(&first[1].slot, &second[2].slot));
        assert!(Arc::ptr_eq(&first[2].wake, &second[1].wake));
        for planned in nodes.by_addr.values() {
            let dbnames: Vec<_> = planned.logins.iter().map(|l| l.dbname.as_str()).collect();
            assert_eq!(dbnames, ["a", "b"], "the first database naming the node logs in; the next if it refuses");
            assert_eq!(planned.databases, ["a", "b"]);
            assert_eq!(planned.landed.len(), 2, "both rounds hear of each sample");
        }
    }

    #[test]
    fn a_node_of_one_database_only_is_probed_for_it_alone() {
        let mut nodes = Nodes::default();
        let landed = Arc::new(Notify::new());
        nodes.join("p:1", "a", &login("a"), &landed);
        nodes.join("p:2", "b", &login("b"), &landed);
        // A database naming a node twice still subscribes once.
        nodes.join("p:2", "b", &login("b"), &landed);
        assert_eq!(nodes.len(), 2);
        let other = &nodes.by_addr["p:2"];
        assert_eq!((other.logins.len(), other.logins[0].dbname.as_str(), other.landed.len()), (1, "b", 1));
    }
}
