//! One database's round: the latest samples of its nodes (taken by probes it may share with
//! other databases) become its next topology, every check interval and whenever one lands.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::beat::Beat;
use super::changes;
use super::probe::SampleSlot;
use super::topology::Freshness;
use super::TopologyWatch;
use crate::config::RoutingSettings;

/// What a database's round reads and where it publishes.
pub struct Round {
    pub watch: Arc<TopologyWatch>,
    /// The database's nodes' samples, in its own order: primary first, then its replicas.
    pub slots: Vec<SampleSlot>,
    /// Fired by the probes of those nodes when a sample lands.
    pub landed: Arc<Notify>,
    /// When it publishes, with every other round and probe of the monitor.
    pub beat: Beat,
    pub limits: Freshness,
}

/// The limits a replica must meet, from the routing settings.
pub fn limits(routing: &RoutingSettings) -> Freshness {
    Freshness {
        max_lag: routing.max_lag,
        max_lag_bytes: routing.max_lag_bytes,
        // Three missed rounds, but never less than the time a slow sample may legitimately take.
        stale_after: (routing.check_interval * 3).max(Duration::from_millis(500)),
    }
}

impl Round {
    /// Publishes a new snapshot every interval (so that samples of a silent node go stale) and
    /// as soon as a sample lands (so that a waiting [`TopologyWatch::refresh`] returns), until
    /// `shutdown` fires.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = self.beat.ticker();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.landed.notified() => {}
                _ = shutdown.cancelled() => break,
            }
            self.publish_next();
        }
    }

    fn publish_next(&self) {
        let latest: Vec<_> = self.slots.iter().map(|s| s.lock().clone()).collect();
        let samples: Vec<_> = latest.iter().map(|s| s.as_ref().map(|(sample, _)| *sample)).collect();
        let current = self.watch.load();
        let mut next = current.next(samples[0], &samples[1..], Instant::now(), self.limits);
        if let Some((_, standbys)) = &latest[0] {
            next.standbys = standbys.clone();
        }
        changes::log(&changes::changes(&current, &next));
        self.watch.publish(next);
    }
}
