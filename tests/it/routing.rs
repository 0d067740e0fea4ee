//! Read/write splitting on the real cluster: which node served a statement is visible with
//! `inet_server_port()`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::harness::{self, cluster, unique, Proxy, REPLICAS};

/// The port of the node that ran `sql` (simple protocol); `sql` returns it first.
pub async fn port(client: &Client, sql: &str) -> u16 {
    let messages = client.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.parse().unwrap()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

/// The same with the extended protocol.
pub async fn port_ext(client: &Client, sql: &str) -> u16 {
    let row = client.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    row.get::<_, i32>(0) as u16
}

fn primary() -> u16 {
    cluster().primary_port
}

fn is_replica(port: u16) -> bool {
    cluster().replica_ports.contains(&port)
}

/// Waits until the monitor has found both replicas fresh: plain reads have reached each. Each
/// read comes from a new session of `conn`, since one session keeps the replica it read from
/// last while the replicas are equally busy; new sessions take them in turn.
pub async fn wait_for_replicas(conn: &str) {
    let started = Instant::now();
    let mut seen = [false, false];
    while started.elapsed() < Duration::from_secs(20) {
        let client = harness::connect(conn).await.unwrap_or_else(|e| panic!("{conn}: {e:?}"));
        let p = port(&client, "select inet_server_port()").await;
        if let Some(i) = cluster().replica_ports.iter().position(|&r| r == p) {
            seen[i] = true;
        }
        if seen == [true, true] {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("reads did not reach both replicas: {seen:?}");
}

/// Waits until plain reads reach a replica, any one: where the monitor samples only when asked
/// (a long `check_interval`), the second replica may become eligible only much later.
pub async fn wait_for_a_replica(client: &Client) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if is_replica(port(client, "select inet_server_port()").await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no read reached a replica");
}

async fn spread(client: &Client, sql: &str, n: usize, ext: bool) -> HashMap<u16, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let p = if ext { port_ext(client, sql).await } else { port(client, sql).await };
        *seen.entry(p).or_default() += 1;
    }
    seen
}

/// A splitting pgsplit whose reads land on a replica regardless of the monitor's timing, once
/// both replicas were seen: a replica the monitor has not seen fresh for a moment (a busy
/// machine) is waited for, not replaced by the primary, and no lag makes one ineligible. Byte
/// lag too: WAL-heavy tests running alongside may put a replica more than the default 16 MiB
/// behind for a moment.
async fn steady_split() -> Proxy {
    let proxy =
        Proxy::with_config(&harness::split_config_waiting("max_lag = \"1h\"\nmax_lag_bytes = \"1024GiB\"")).await;
    wait_for_replicas(&proxy.app_conn()).await;
    proxy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_reads_spread_over_both_replicas_and_a_session_keeps_its_own() {
    let _healthy = REPLICAS.read().await;
    let proxy = steady_split().await;
    let [r1, r2] = cluster().replica_ports;
    for ext in [false, true] {
        // Nothing else runs on this pgsplit: the replicas are equally busy at every read, so the
        // session stays on the replica whose connections it warmed.
        let client = proxy.client().await;
        let seen = spread(&client, "select inet_server_port()", 20, ext).await;
        assert_eq!(seen.len(), 1, "ext={ext}: one session, one replica: {seen:?}");
        assert!(seen.contains_key(&r1) || seen.contains_key(&r2), "ext={ext}: {seen:?}");
        // New sessions take the replicas in turn.
        let mut sessions = HashMap::new();
        for _ in 0..6 {
            let client = proxy.client().await;
            let p = if ext {
                port_ext(&client, "select inet_server_port()").await
            } else {
                port(&client, "select inet_server_port()").await
            };
            *sessions.entry(p).or_insert(0) += 1;
        }
        assert!(sessions.contains_key(&r1) && sessions.contains_key(&r2), "ext={ext}: {sessions:?}");
        assert!(!sessions.contains_key(&primary()), "ext={ext}: {sessions:?}");
    }
}

/// Least-busy balancing counts the server connections each replica's pool has lent out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_goes_to_the_replica_with_fewer_connections_in_use() {
    let _healthy = REPLICAS.read().await;
    let proxy = steady_split().await;
    for _ in 0..4 {
        // A read-only transaction keeps a connection of the replica it started on...
        let holder = proxy.client().await;
        holder.batch_execute("begin read only").await.unwrap();
        let held = port(&holder, "select inet_server_port()").await;
        assert!(is_replica(held), "a read-only transaction went to {held}");
        // ...so new sessions read on the other one, whatever turn a tie would take.
        for _ in 0..3 {
            let reader = proxy.client().await;
            let p = port(&reader, "select inet_server_port()").await;
            assert!(is_replica(p) && p != held, "{held} has a connection in use, {p} took the read");
        }
        holder.batch_execute("commit").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_class_lands_on_the_primary() {
    let _healthy = REPLICAS.read().await;
    let proxy = Proxy::split().await;
    let client = proxy.client().await;
    wait_for_replicas(&proxy.app_conn()).await;
    let t = unique("w");
    client
        .batch_execute(&format!("create table {t} (x int); create sequence {t}_seq; insert into {t} values (1)"))
        .await
        .unwrap();
    let writes = [
        format!("insert into {t} values (2) returning inet_server_port()"),
        format!("update {t} set x = x where x = 1 returning inet_server_port()"),
        format!("with d as (delete from {t} where x = 99 returning 1) select inet_server_port()"),
        format!("select inet_server_port() from {t} where x = 1 for update"),
        format!("select inet_server_port() from {t} where x = 1 for share"),
        format!("select inet_server_port(), nextval('{t}_seq')"),
        "select inet_server_port(), pg_advisory_xact_lock(42)".to_string(),
        "select inet_server_port(), set_config('pgsplit_test.x', '1', false)".to_string(),
        "select inet_server_port(), txid_current()".to_string(),
        "select inet_server_port(), pg_notify('nobody', 'x')".to_string(),
    ];
    for sql in &writes {
        assert_eq!(port(&client, sql).await, primary(), "simple: {sql}");
        assert_eq!(port_ext(&client, sql).await, primary(), "extended: {sql}");
    }
    client.batch_execute(&format!("drop table {t}; drop sequence {t}_seq")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_stays_on_one_node_and_read_only_ones_use_replicas() {
    let _healthy = REPLICAS.read().await;
    let proxy = Proxy::split().await;
    let client = proxy.client().await;
    wait_for_replicas(&proxy.app_conn()).await;
    client.batch_execute("begin").await.unwrap();
    let seen = spread(&client, "select inet_server_port()", 10, false).await;
    client.batch_execute("commit").await.unwrap();
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), vec![primary()]);
    for begin in ["begin read only", "start transaction isolation level repeatable read, read only"] {
        client.batch_execute(begin).await.unwrap();
        let seen = spread(&client, "select inet_server_port()", 10, true).await;
        client.batch_execute("commit").await.unwrap();
        assert_eq!(seen.len(), 1, "{begin}: one node for the whole transaction: {seen:?}");
        assert!(is_replica(*seen.keys().next().unwrap()), "{begin}: {seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_and_session_route_steer_reads() {
    let _healthy = REPLICAS.read().await;
    let proxy = Proxy::split().await;
    let client = proxy.client().await;
    wait_for_replicas(&proxy.app_conn()).await;
    let hinted = spread(&client, "/* pgsplit: route=primary */ select inet_server_port()", 5, false).await;
    assert_eq!(hinted.keys().copied().collect::<Vec<_>>(), vec![primary()]);
    client.batch_execute("set pgsplit.route = 'primary'").await.unwrap();
    assert_eq!(port(&client, "select inet_server_port()").await, primary());
    client.batch_execute("reset pgsplit.route").await.unwrap();
    wait_for_replicas(&proxy.app_conn()).await;
    let opt = format!("{} options='-c pgsplit.route=primary'", proxy.conn_str("app", "app", "app"));
    let pinned = harness::connect(&opt).await.unwrap();
    assert_eq!(port(&pinned, "select inet_server_port()").await, primary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_route_by_table() {
    let _healthy = REPLICAS.read().await;
    let ledger = unique("ledger");
    // The plain read after the write waits for a replica past it instead of going to the primary,
    // however late the monitor samples one. The rule follows the `[routing]` section's keys.
    let config = format!(
        "{}\n[[routing.rules]]\nname = \"ledger is always fresh\"\ntables = [\"{ledger}\"]\nroute = \"primary\"\n",
        harness::split_config_waiting("")
    );
    let proxy = Proxy::with_config(&config).await;
    let client = proxy.client().await;
    client.batch_execute(&format!("create table {ledger} (x int); insert into {ledger} values (1)")).await.unwrap();
    wait_for_replicas(&proxy.app_conn()).await;
    let seen = spread(&client, &format!("select inet_server_port() from {ledger}"), 5, true).await;
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), vec![primary()]);
    assert!(is_replica(port(&client, "select inet_server_port()").await));
    client.batch_execute(&format!("drop table {ledger}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_route_by_application_name() {
    let _healthy = REPLICAS.read().await;
    let config = format!(
        "{}\n[[routing.rules]]\nname = \"reports read fresh\"\napplication_name = [\"reports\"]\nroute = \"primary\"\n",
        harness::split_config_waiting("")
    );
    let proxy = Proxy::with_config(&config).await;
    wait_for_replicas(&proxy.app_conn()).await;
    let reports = harness::connect(&format!("{} application_name=reports", proxy.app_conn())).await.unwrap();
    assert_eq!(
        spread(&reports, "select inet_server_port()", 5, true).await.keys().copied().collect::<Vec<_>>(),
        vec![primary()]
    );
    // Set during the session, as drivers and `SET application_name` do, it applies from then on.
    let client = proxy.client().await;
    assert!(is_replica(port(&client, "select inet_server_port()").await));
    client.batch_execute("set application_name = reports").await.unwrap();
    assert_eq!(port(&client, "select inet_server_port()").await, primary());
}

/// Creates table `t` and a function `t_writer()` that inserts into it and returns `returning`,
/// after pgsplit read pg_proc (so the classifier takes a call of it for a read), and waits until
/// both replicas replayed it. Returns the function's name and the admin connection.
pub async fn hidden_writer(t: &str, returning: &str) -> (String, Client) {
    let f = format!("{t}_writer");
    let admin = harness::primary_admin().await;
    admin
        .batch_execute(&format!(
            "create table {t} (x int); grant all on {t} to public; \
             create function {f}() returns int language sql as 'insert into {t} values (1) returning {returning}'"
        ))
        .await
        .unwrap();
    harness::wait_replayed_on_replicas(&format!("select 1 from pg_proc where proname = '{f}'")).await;
    (f, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_classifier_cannot_see_is_retried_on_the_primary() {
    let _healthy = REPLICAS.read().await;
    // Reads wait for a replica past the session's last write instead of going to the primary:
    // after the first call's retry on the primary (a write), the second call still goes to a
    // replica first, however late the monitor samples one past it.
    let proxy = Proxy::with_config(&harness::split_config_waiting("")).await;
    let client = proxy.client().await;
    // Created after pgsplit read pg_proc, so the classifier cannot know the function writes.
    wait_for_replicas(&proxy.app_conn()).await;
    let t = unique("hidden");
    let (f, admin) = hidden_writer(&t, "inet_server_port()").await;
    for ext in [false, true] {
        let sql = format!("select {f}()");
        let classifier = pgsplit::classify::Classifier::new(Default::default());
        assert!(!classifier.classify(&sql).writes);
        let served = if ext { port_ext(&client, &sql).await } else { port(&client, &sql).await };
        assert_eq!(served, primary(), "ext={ext}");
    }
    let n: i64 =
        client.query_one(&format!("/* pgsplit: route=primary */ select count(*) from {t}"), &[]).await.unwrap().get(0);
    assert_eq!(n, 2, "each statement ran exactly once");
    admin.batch_execute(&format!("drop function {f}(); drop table {t}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volatile_user_functions_go_to_the_primary_stable_ones_to_replicas() {
    let _healthy = REPLICAS.read().await;
    let f = unique("fn");
    let admin = harness::primary_admin().await;
    admin
        .batch_execute(&format!(
            "create function {f}_vol() returns int language sql as 'select 1'; \
             create function {f}_stable() returns int language sql stable as 'select 1'; \
             grant execute on function {f}_vol(), {f}_stable() to public"
        ))
        .await
        .unwrap();
    // On both replicas before pgsplit is used: STABLE calls read on either, and so do VOLATILE
    // ones until pgsplit has read pg_proc.
    harness::wait_replayed_on_replicas(&format!(
        "select 1 from pg_proc where proname in ('{f}_vol', '{f}_stable') having count(*) = 2"
    ))
    .await;
    // A STABLE read after a VOLATILE call (a write) waits for a replica past it rather than going
    // to the primary, however late the monitor samples one.
    let proxy = Proxy::with_config(&harness::split_config_waiting("")).await;
    let client = proxy.client().await;
    wait_for_replicas(&proxy.app_conn()).await;
    // The monitor reads pg_proc once at start; allow it a moment.
    let started = Instant::now();
    while port(&client, &format!("select inet_server_port(), {f}_vol()")).await != primary() {
        assert!(started.elapsed() < Duration::from_secs(10), "a VOLATILE function never went to the primary");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..5 {
        assert_eq!(port(&client, &format!("select inet_server_port(), {f}_vol()")).await, primary());
    }
    // A volatile call counts as a write; STABLE calls still read, on a replica that replayed it.
    for _ in 0..5 {
        assert!(is_replica(port(&client, &format!("select inet_server_port(), {f}_stable()")).await));
    }
    admin.batch_execute(&format!("drop function {f}_vol(); drop function {f}_stable()")).await.unwrap();
}
