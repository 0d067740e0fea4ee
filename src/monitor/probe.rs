//! Sampling one node: a tokio-postgres connection kept by deadpool-postgres, its queries prepared
//! once on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, Timeouts};
use parking_lot::Mutex;

use tokio::sync::Notify;
use tokio::time::error::Elapsed;

use super::beat::Beat;
use super::tls::MakeRustls;
use super::topology::{Sample, Standby};
use super::wal::WalPages;
use crate::tls::ServerTls;

/// One round trip that works on a primary and on a replica alike.
const SAMPLE_SQL: &str = "SELECT pg_is_in_recovery(), \
     CASE WHEN pg_is_in_recovery() THEN NULL ELSE (pg_current_wal_lsn() - '0/0')::int8 END, \
     (pg_last_wal_replay_lsn() - '0/0')::int8, \
     (pg_last_wal_receive_lsn() - '0/0')::int8, \
     extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8, \
     current_setting('wal_block_size')::int8, pg_size_bytes(current_setting('wal_segment_size')), \
     CASE WHEN pg_is_in_recovery() THEN NULL ELSE (pg_current_wal_insert_lsn() - '0/0')::int8 END";

/// Which cluster and timeline the node is on. Kept apart from the sample so that a monitor user
/// that may not read them still samples the rest. Out of recovery the timeline is the current
/// WAL file's; in recovery the WAL receiver's (it needs pg_monitor), else the last restartpoint's,
/// which lags behind (so a standby may wait longer for reads after a failover: fails closed).
const IDENTITY_SQL: &str = "SELECT (SELECT system_identifier FROM pg_control_system())::text, \
     CASE WHEN pg_is_in_recovery() \
     THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver), \
                   (SELECT timeline_id FROM pg_control_checkpoint()))::int8 \
     ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int8 END, \
     pg_is_in_recovery() AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver \
                                     WHERE pid IS NOT NULL AND received_tli IS NULL)";

/// The primary's view of its standbys; LSNs and lags are NULL without pg_monitor rights.
const STANDBYS_SQL: &str = "SELECT application_name, client_addr::text, state, \
     (sent_lsn - '0/0')::int8, (replay_lsn - '0/0')::int8, extract(epoch FROM replay_lag)::float8 \
     FROM pg_stat_replication ORDER BY application_name, client_addr::text";

/// Shortest pause between two samples of a node, however often reads ask for a fresh one.
const MIN_PAUSE: Duration = Duration::from_millis(1);

/// Who the monitor logs in as, and over what.
#[derive(Clone, Debug)]
pub struct ProbeLogin {
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub tls: ServerTls,
}

/// The latest sample of one node (and, from a primary, its standbys), written by its probe task
/// and read by the topology round.
pub type SampleSlot = Arc<Mutex<Option<Sampled>>>;

/// How a probe is paced: on every `beat`, and at once when `wake` fires; `landed` tells the
/// topology round of every database naming the node that a new sample is in.
#[derive(Clone)]
pub struct Pacing {
    pub beat: Beat,
    pub connect_timeout: Duration,
    pub wake: Arc<Notify>,
    pub landed: Arc<[Arc<Notify>]>,
}

/// Samples `addr` into `slot` until the task is dropped; backs off while the node is
/// unreachable so a dead node costs little. `logins` are the logins of the databases naming the
/// node, the first database's first.
pub async fn run_probe(addr: Arc<str>, logins: Vec<ProbeLogin>, pacing: Pacing, slot: SampleSlot) {
    let Pacing { beat, connect_timeout, .. } = pacing;
    let interval = beat.interval();
    let Some(mut login) = Login::new(addr.clone(), logins, connect_timeout) else {
        tracing::error!(node = %addr, "monitor cannot parse node address");
        return;
    };
    let mut failures: u32 = 0;
    let mut hidden = Hidden { node: addr.clone(), receiver_told: false };
    loop {
        let started = tokio::time::Instant::now();
        let limit = connect_timeout + interval;
        let was_primary = slot.lock().as_ref().is_some_and(|(last, _)| !last.in_recovery);
        let mut outcome = attempt(&mut login, &mut hidden, limit, was_primary).await;
        if failures == 0 && matches!(outcome, Ok(Err(_))) {
            // The pooled connection may have died with a server restart (a switchover), or the
            // database logged into refused it: one more try, on a new connection, before the
            // node counts as failing and backs off.
            outcome = attempt(&mut login, &mut hidden, limit, was_primary).await;
        }
        match outcome {
            Ok(Ok(s)) => {
                if failures > 0 {
                    tracing::info!(node = %addr, "node reachable again");
                }
                failures = 0;
                *slot.lock() = Some(s);
                // A permit each: a round busy right now runs again for this sample.
                pacing.landed.iter().for_each(|round| round.notify_one());
            }
            Ok(Err(e)) => failures = note_failure(&addr, failures, &e),
            Err(_) => failures = note_failure(&addr, failures, &"sample timed out"),
        }
        // On the monitor's beat while the node answers (with the other probes and the rounds:
        // one wake-up for all); backing off from when this attempt began while it does not.
        let next = match failures {
            0 => beat.next_after(tokio::time::Instant::now()),
            _ => started + backoff(interval, failures),
        };
        let woken = pacing.wake.notified();
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = woken, if failures == 0 => {
                tokio::time::sleep(MIN_PAUSE.saturating_sub(started.elapsed())).await;
            }
        }
    }
}

/// One sample within `limit`; a failure that is the database's moves the login on.
async fn attempt(
    login: &mut Login,
    hidden: &mut Hidden,
    limit: Duration,
    was_primary: bool,
) -> Result<Result<Sampled, SampleError>, Elapsed> {
    let outcome = tokio::time::timeout(limit, sample(&login.pool, hidden, was_primary)).await;
    if let Ok(Err(e)) = &outcome {
        login.after_failure(e.as_ref());
    }
    outcome
}

/// The probe's connection, logged in through one of the databases naming the node.
struct Login {
    addr: Arc<str>,
    logins: Vec<ProbeLogin>,
    current: usize,
    pool: Pool,
    connect_timeout: Duration,
}

impl Login {
    fn new(addr: Arc<str>, logins: Vec<ProbeLogin>, connect_timeout: Duration) -> Option<Login> {
        let pool = build_pool(&addr, logins.first()?, connect_timeout)?;
        Some(Login { addr, logins, current: 0, pool, connect_timeout })
    }

    /// After a failure that is the database's rather than the node's (dropped, renamed, no
    /// CONNECT right, not in pg_hba.conf), logs in through the next database naming the node:
    /// one database gone must not blind the monitor to a node the others still use.
    fn after_failure(&mut self, e: &(dyn std::error::Error + 'static)) {
        if self.logins.len() < 2 || !refused_database(e) {
            return;
        }
        let next = (self.current + 1) % self.logins.len();
        let Some(pool) = build_pool(&self.addr, &self.logins[next], self.connect_timeout) else { return };
        tracing::warn!(
            node = %self.addr, refused = %self.logins[self.current].dbname, next = %self.logins[next].dbname,
            error = %e, "the node refused the monitor's database; the monitor logs in through another database on it"
        );
        (self.current, self.pool) = (next, pool);
    }
}

/// Whether a login failed because of the database asked for: it does not exist (3D000), the
/// user may not connect to it (42501, or 28000 from pg_hba.conf), or it takes no connections.
fn refused_database(e: &(dyn std::error::Error + 'static)) -> bool {
    let Some(PoolError::Backend(e)) = e.downcast_ref::<PoolError>() else { return false };
    matches!(e.code().map(|c| c.code()), Some("3D000" | "42501" | "28000" | "55000"))
}

fn note_failure(addr: &str, failures: u32, e: &dyn std::fmt::Display) -> u32 {
    if failures == 0 {
        tracing::warn!(node = %addr, error = %e, "node check failed; it gets no reads until it answers again");
    }
    failures.saturating_add(1)
}

/// Doubles the pause per failure, up to five seconds.
fn backoff(interval: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.min(6);
    (interval * factor).min(Duration::from_secs(5))
}

type SampleError = Box<dyn std::error::Error + Send + Sync>;

/// A node's sample and, from a primary, its standbys.
type Sampled = (Sample, Arc<[Standby]>);

/// What the monitor user may not see on a node, said once per node.
struct Hidden {
    node: Arc<str>,
    receiver_told: bool,
}

/// Samples a node over the probe's connection. The queries are prepared once per connection
/// (`prepare_cached`), and sent together (tokio-postgres pipelines queries polled at once): a
/// round is one Bind/Execute round trip. A node that was the primary at its last sample
/// (`was_primary`) is asked for its standbys in that round trip too; one found out of recovery
/// for the first time is asked in a second. A text query costs a Parse and a plan each time, two
/// round trips and a Close: at the default 100 ms interval that was ~43 ms of server CPU a second
/// across a primary and two replicas, and ~18 ms of pgsplit's (now ~5 and ~9).
async fn sample(pool: &Pool, hidden: &mut Hidden, was_primary: bool) -> Result<Sampled, SampleError> {
    let client = pool.get().await?;
    let standbys_statement = async {
        match was_primary {
            true => Some(client.prepare_cached(STANDBYS_SQL).await),
            false => None,
        }
    };
    let (sample, identity, standbys_statement) =
        tokio::join!(client.prepare_cached(SAMPLE_SQL), client.prepare_cached(IDENTITY_SQL), standbys_statement);
    let sample = sample?;
    // A monitor user that may not read the identity still samples the rest.
    let identity_query = async {
        match identity {
            Ok(statement) => client.query_one(&statement, &[]).await,
            Err(e) => Err(e),
        }
    };
    let standbys_query = async {
        match standbys_statement? {
            Ok(statement) => Some(client.query(&statement, &[]).await),
            Err(e) => Some(Err(e)),
        }
    };
    // Every commit that ended before this instant is at or below the insert position read.
    let asked = Instant::now();
    let (row, identity, standbys) = tokio::join!(client.query_one(&sample, &[]), identity_query, standbys_query);
    let row = row?;
    let (system_id, timeline) = identity_of(identity, hidden);
    let sample = Sample {
        asked,
        taken: Instant::now(),
        in_recovery: row.get(0),
        current_lsn: lsn(&row, 1),
        insert_lsn: lsn(&row, 7),
        replay_lsn: lsn(&row, 2),
        receive_lsn: lsn(&row, 3),
        replay_age: row.get(4),
        timeline,
        system_id,
        wal_pages: row
            .get::<_, Option<i64>>(5)
            .zip(row.get(6))
            .and_then(|(block, segment)| WalPages::new(block, segment)),
    };
    let standbys = match (sample.in_recovery, standbys) {
        (true, _) => Arc::from([]),
        (false, Some(rows)) => rows?.iter().map(standby).collect(),
        (false, None) => {
            client.query(&client.prepare_cached(STANDBYS_SQL).await?, &[]).await?.iter().map(standby).collect()
        }
    };
    Ok((sample, standbys))
}

/// The system identifier and timeline from the identity query, if the monitor user may read
/// them; says once per node when the WAL receiver is hidden from it.
fn identity_of(
    identity: Result<tokio_postgres::Row, tokio_postgres::Error>,
    hidden: &mut Hidden,
) -> (Option<u64>, Option<u32>) {
    match identity {
        Ok(identity) => {
            if identity.get::<_, Option<bool>>(2) == Some(true) && !hidden.receiver_told {
                hidden.receiver_told = true;
                tracing::warn!(
                    node = %hidden.node,
                    "the monitor user cannot read this standby's WAL receiver (grant it pg_monitor): its timeline comes from its last restartpoint, so after a failover it gets reads only once it passes one"
                );
            }
            (
                identity.get::<_, Option<String>>(0).and_then(|s| s.parse().ok()),
                identity.get::<_, Option<i64>>(1).and_then(|t| u32::try_from(t).ok()),
            )
        }
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the node's timeline and system identifier");
            (None, None)
        }
    }
}

/// An LSN column sent as `lsn - '0/0'`.
fn lsn(row: &tokio_postgres::Row, i: usize) -> Option<u64> {
    row.get::<_, Option<i64>>(i).map(|v| v.max(0) as u64)
}

fn standby(row: &tokio_postgres::Row) -> Standby {
    Standby {
        application_name: row.get::<_, Option<String>>(0).unwrap_or_default(),
        client_addr: row.get(1),
        state: row.get(2),
        sent_lsn: lsn(row, 3),
        replay_lsn: lsn(row, 4),
        replay_lag: row.get::<_, Option<f64>>(5).map(|s| Duration::from_secs_f64(s.clamp(0.0, 1e9))),
    }
}

fn build_pool(addr: &str, login: &ProbeLogin, connect_timeout: Duration) -> Option<Pool> {
    let (config, tls) = client_config(addr, login, connect_timeout)?;
    let manager = Manager::from_config(config, tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let timeouts =
        Timeouts { wait: Some(connect_timeout), create: Some(connect_timeout), recycle: Some(connect_timeout) };
    Pool::builder(manager).max_size(1).timeouts(timeouts).runtime(Runtime::Tokio1).build().ok()
}

/// The tokio-postgres config and TLS connector for a monitor connection to `addr` (`host:port`).
pub fn client_config(
    addr: &str,
    login: &ProbeLogin,
    connect_timeout: Duration,
) -> Option<(tokio_postgres::Config, MakeRustls)> {
    let (host, port) = addr.rsplit_once(':')?;
    let (tls, ssl_mode) = MakeRustls::new(&login.tls);
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port.parse().ok()?)
        .user(&login.user)
        .dbname(&login.dbname)
        .application_name("pgsplit monitor")
        .connect_timeout(connect_timeout)
        .ssl_mode(ssl_mode);
    if let Some(p) = &login.password {
        config.password(p);
    }
    Some((config, tls))
}
