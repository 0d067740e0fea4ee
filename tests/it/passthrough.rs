//! Users and databases PostgreSQL manages: auth passthrough (`[auth]`) for roles not listed in
//! the config, and the `"*"` database for databases not listed. All on the real cluster.

use std::time::{Duration, Instant};

use tokio_postgres::SimpleQueryMessage;

use crate::harness::{self, cluster, Proxy};
use crate::routing::wait_for_a_replica;

/// The split config, with the superuser `postgres` looking users up with the default query.
fn config_with_lookup(extra: &str) -> String {
    format!("admin_users = [\"postgres\"]\n{}\n[auth]\nuser = \"postgres\"\n{extra}", harness::split_config("", ""))
}

/// A new role that may log in with `password`, read `app` and write to its table `t`.
async fn create_role(password: &str) -> (String, String) {
    let role = harness::unique("looked_up");
    let table = harness::unique("passthrough_t");
    let admin = harness::primary_admin().await;
    admin.batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'")).await.unwrap();
    admin.batch_execute(&format!("CREATE TABLE {table} (n int); GRANT ALL ON {table} TO {role}")).await.unwrap();
    (role, table)
}

async fn port(client: &tokio_postgres::Client, sql: &str) -> u16 {
    client.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get::<_, i32>(0) as u16
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_created_after_start_logs_in_reads_on_replicas_and_writes_on_the_primary() {
    let _replicas = harness::REPLICAS.read().await;
    let proxy = Proxy::with_config(&config_with_lookup("")).await;
    let (role, table) = create_role("first-pw").await;
    let client = proxy.client_as(&role, "first-pw", "app").await;
    let who: String = client.query_one("select current_user::text", &[]).await.unwrap().get(0);
    assert_eq!(who, role, "the server session runs as the looked-up role");
    wait_for_a_replica(&client).await;
    let written = port(&client, &format!("insert into {table} values (1) returning inet_server_port()")).await;
    assert_eq!(written, cluster().primary_port, "a write goes to the primary");
    // Server logins were made with the keys from the client's proof: more connections open fine.
    let second = proxy.client_as(&role, "first-pw", "app").await;
    let (a, b) = tokio::join!(
        client.query_one("select pg_sleep(0.2), 1", &[]),
        second.query_one("select pg_sleep(0.2), 2", &[]),
    );
    a.unwrap();
    b.unwrap();
    let queried = proxy.metric("pgsplit_auth_lookups_total", &[("result", "queried")]).await;
    assert!(queried >= Some(2.0), "each login asked the primary: {queried:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_password_works_on_the_next_login_and_the_old_one_stops() {
    // It ends the role's sessions on the replicas too, connecting to each: they must be up.
    let _replicas = harness::REPLICAS.read().await;
    let proxy = Proxy::with_config(&config_with_lookup("")).await;
    let (role, _) = create_role("old-pw").await;
    let client = proxy.client_as(&role, "old-pw", "app").await;
    client.query_one("select 1", &[]).await.unwrap();
    let admin = harness::primary_admin().await;
    admin.batch_execute(&format!("ALTER ROLE {role} PASSWORD 'new-pw'")).await.unwrap();

    let renewed = proxy.client_as(&role, "new-pw", "app").await;
    let old = proxy.try_client(&role, "old-pw", "app").await.unwrap_err();
    assert_eq!(harness::sqlstate(&old).as_deref(), Some("28P01"));
    // The pool now logs in with the new keys: a fresh server connection opens.
    end_server_sessions_of(&role).await;
    for sql in ["select current_user::text", "select current_user::text for update"] {
        let mut answered = None;
        for _ in 0..3 {
            // A query may meet a connection just ended; pgsplit then opens a new one.
            if let Ok(row) = renewed.query_one(sql, &[]).await {
                answered = Some(row.get::<_, String>(0));
                break;
            }
        }
        assert_eq!(answered.as_deref(), Some(role.as_str()), "{sql}");
    }
}

/// Ends every server session of `role`, on every node, and waits until they are gone. The
/// caller holds [`harness::REPLICAS`] for reading.
async fn end_server_sessions_of(role: &str) {
    let nodes = [harness::primary_admin().await, harness::replica_admin(0).await, harness::replica_admin(1).await];
    let sessions = format!("select count(pg_terminate_backend(pid)) from pg_stat_activity where usename = '{role}'");
    for node in &nodes {
        let started = Instant::now();
        while node.query_one(&sessions, &[]).await.unwrap().get::<_, i64>(0) > 0 {
            assert!(started.elapsed() < Duration::from_secs(20), "sessions of {role} stayed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_role_is_refused_exactly_like_a_wrong_password() {
    let proxy = Proxy::with_config(&config_with_lookup("")).await;
    let (role, table) = create_role("pw").await;
    proxy.client_as(&role, "pw", "app").await;
    let admin = harness::primary_admin().await;
    admin.batch_execute(&format!("DROP TABLE {table}; DROP ROLE {role}")).await.unwrap();

    let dropped = proxy.try_client(&role, "pw", "app").await.unwrap_err();
    let (other, _) = create_role("right").await;
    let wrong = proxy.try_client(&other, "wrong", "app").await.unwrap_err();
    let never = proxy.try_client("never_existed", "pw", "app").await.unwrap_err();
    for e in [&dropped, &wrong, &never] {
        assert_eq!(harness::sqlstate(e).as_deref(), Some("28P01"), "{e:?}");
    }
    let said = |e: &tokio_postgres::Error, user: &str| e.as_db_error().unwrap().message().replace(user, "USER");
    assert_eq!(said(&dropped, &role), said(&wrong, &other));
    assert_eq!(said(&never, "never_existed"), said(&wrong, &other));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_md5_role_logs_in_and_pgsplit_logs_into_the_server_with_its_hash() {
    // app_md5 is not listed here: it is looked up, and its verifier is an md5 hash.
    let config =
        config_with_lookup("").replace("[[users]]\nname = \"app_md5\"\npassword = \"app_md5\"\nauth = \"md5\"\n", "");
    assert!(!config.contains("app_md5"));
    let proxy = Proxy::with_config(&config).await;
    let client = proxy.client_as("app_md5", "app_md5", "app").await;
    let who: String = client.query_one("select current_user::text", &[]).await.unwrap().get(0);
    assert_eq!(who, "app_md5");
    let e = proxy.try_client("app_md5", "wrong", "app").await.unwrap_err();
    assert_eq!(harness::sqlstate(&e).as_deref(), Some("28P01"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_user_without_rights_uses_the_readme_function() {
    // The README's recipe: a role that may only call a SECURITY DEFINER function.
    let lookup = harness::unique("pgsplit_lookup");
    let schema = harness::unique("pgsplit");
    let admin =
        harness::connect(&format!("host=127.0.0.1 port={} user=postgres dbname=postgres", cluster().primary_port))
            .await
            .unwrap();
    admin
        .batch_execute(&format!(
            "CREATE ROLE {lookup} LOGIN PASSWORD 'lookup-pw';
             CREATE SCHEMA {schema};
             CREATE FUNCTION {schema}.user_lookup(i_username text, OUT uname text, OUT phash text)
             RETURNS record LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
                 SELECT rolname::text, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END
                 FROM pg_authid WHERE rolname = i_username AND rolcanlogin $$;
             REVOKE ALL ON FUNCTION {schema}.user_lookup(text) FROM PUBLIC;
             GRANT USAGE ON SCHEMA {schema} TO {lookup};
             GRANT EXECUTE ON FUNCTION {schema}.user_lookup(text) TO {lookup};"
        ))
        .await
        .unwrap();
    let config = harness::split_config("", "")
        + &format!(
            "[auth]\nuser = \"{lookup}\"\npassword = \"lookup-pw\"\ndatabase = \"postgres\"\n\
             query = \"SELECT uname, phash FROM {schema}.user_lookup($1)\"\n"
        );
    let proxy = Proxy::with_config(&config).await;
    let (role, _) = create_role("via-function").await;
    let client = proxy.client_as(&role, "via-function", "app").await;
    client.query_one("select 1", &[]).await.unwrap();
    // The lookup role itself cannot read pg_authid: only the function gives it the verifier.
    let direct = harness::connect(&format!(
        "host=127.0.0.1 port={} user={lookup} password=lookup-pw dbname=postgres",
        cluster().primary_port
    ))
    .await
    .unwrap();
    let e = direct.query("select rolpassword from pg_authid", &[]).await.unwrap_err();
    assert_eq!(harness::sqlstate(&e).as_deref(), Some("42501"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_lookup_gives_a_retry_error_and_never_its_own_message() {
    // The lookup user's password is wrong: the lookup fails on every login.
    let config = harness::split_config("", "") + "[auth]\nuser = \"app\"\npassword = \"not-app\"\n";
    let proxy = Proxy::with_config(&config).await;
    let (role, _) = create_role("pw").await;
    let e = proxy.try_client(&role, "pw", "app").await.unwrap_err();
    let db = e.as_db_error().expect("an error from pgsplit");
    assert_eq!(db.code().code(), "57P03");
    assert!(!db.message().contains("app"), "the lookup's own error leaked: {}", db.message());
    assert!(db.hint().unwrap_or_default().contains("retry"), "{:?}", db.hint());
    let failed = proxy.metric("pgsplit_auth_lookups_total", &[("result", "failed")]).await;
    assert_eq!(failed, Some(1.0));
    // Listed users are not looked up, and still log in.
    proxy.client_as("app", "app", "app").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlisted_database_is_reached_through_the_wildcard() {
    let _replicas = harness::REPLICAS.read().await;
    let c = cluster();
    let name = harness::unique("wild");
    let admin = harness::primary_admin().await;
    admin.batch_execute(&format!("CREATE DATABASE {name} OWNER app")).await.unwrap();
    let config = format!(
        "admin_users = [\"postgres\"]\n{}\n[databases.\"*\"]\nprimary = \"127.0.0.1:{}\"\nreplicas = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n",
        harness::test_config("idle_timeout = \"1s\"", ""),
        c.primary_port,
        c.replica_ports[0],
        c.replica_ports[1]
    );
    let proxy = Proxy::with_config(&config).await;
    {
        let client = proxy.client_as("app", "app", &name).await;
        let db: String = client.query_one("select current_database()::text", &[]).await.unwrap().get(0);
        assert_eq!(db, name);
        wait_for_a_replica(&client).await;
        client.batch_execute("create table w (n int)").await.unwrap();
        let written = port(&client, "insert into w values (1) returning inet_server_port()").await;
        assert_eq!(written, c.primary_port, "a write goes to the primary");
        // A listed database still goes where its own entry says.
        let listed = proxy.client_as("app", "app", "app").await;
        assert_eq!(port(&listed, "select inet_server_port()").await, c.primary_port);
    }
    // A database the server does not have: the server's own 3D000.
    let e = proxy.try_client("app", "app", "no_such_database_here").await.unwrap_err();
    assert_eq!(harness::sqlstate(&e).as_deref(), Some("3D000"), "{e:?}");

    // Once its clients left and its connections idled out, the wildcard pool goes.
    let console = proxy.client_as("postgres", "", "pgsplit").await;
    let started = Instant::now();
    while pools_of(&console, &name).await > 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the pool of {name} stayed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await.unwrap();
}

/// How many SHOW POOLS rows name `database`.
async fn pools_of(console: &tokio_postgres::Client, database: &str) -> usize {
    let rows = console.simple_query("SHOW POOLS").await.unwrap();
    rows.iter().filter(|m| matches!(m, SimpleQueryMessage::Row(r) if r.get("database") == Some(database))).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looked_up_role_reaches_an_unlisted_database() {
    let c = cluster();
    let name = harness::unique("wild_lookup");
    let (role, _) = create_role("pw").await;
    let admin = harness::primary_admin().await;
    admin.batch_execute(&format!("CREATE DATABASE {name} OWNER {role}")).await.unwrap();
    let config = format!(
        "{}\n[databases.\"*\"]\nprimary = \"127.0.0.1:{}\"\n[auth]\nuser = \"postgres\"\n",
        harness::test_config("", ""),
        c.primary_port
    );
    let proxy = Proxy::with_config(&config).await;
    let client = proxy.client_as(&role, "pw", &name).await;
    let row = client.query_one("select current_user::text, current_database()::text", &[]).await.unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, String>(1)), (role.clone(), name.clone()));
    // The lookup runs in "*"'s own database, so a name the server lacks is the server's 3D000.
    let e = proxy.try_client(&role, "pw", "no_such_database_either").await.unwrap_err();
    assert_eq!(harness::sqlstate(&e).as_deref(), Some("3D000"), "{e:?}");
    drop(client);
    admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_on_a_silent_primary_fails_soft_with_a_retry_error() {
    // A "primary" that accepts connections and never says a word: the lookup is bounded by
    // pool.connect_timeout, and the client is told to retry instead of hanging.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = hole.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hole.accept().await {
            held.push(socket);
        }
    });
    let config = format!(
        "{}\n[databases.silent]\nprimary = \"{addr}\"\n[auth]\nuser = \"postgres\"\n",
        harness::test_config("connect_timeout = \"300ms\"", "")
    );
    let proxy = Proxy::with_config(&config).await;
    let e = proxy.try_client("someone", "pw", "silent").await.unwrap_err();
    assert_eq!(harness::sqlstate(&e).as_deref(), Some("57P03"), "{e:?}");
    // Other databases are not held up by it.
    proxy.client_as("app", "app", "app").await;
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_pools_of_looked_up_users_and_resizes_them() {
    let path = std::env::temp_dir().join(format!("{}.toml", harness::unique("passthrough_reload")));
    std::fs::write(&path, config_with_lookup("").replace("[pool]\n", "[pool]\nsize = 3\n")).unwrap();
    let proxy = Proxy::from_file(&path).await;
    let (role, table) = create_role("pw").await;
    let client = proxy.client_as(&role, "pw", "app").await;
    client.batch_execute(&format!("insert into {table} values (1)")).await.unwrap();
    let console = proxy.client_as("postgres", "", "pgsplit").await;
    std::fs::write(&path, config_with_lookup("").replace("[pool]\n", "[pool]\nsize = 5\n")).unwrap();
    console.simple_query("RELOAD").await.expect("the config reloads");

    let sizes = pool_sizes_of(&console, &role).await;
    assert!(!sizes.is_empty() && sizes.iter().all(|s| s == "5"), "{role}'s pools after reload: {sizes:?}");
    client.batch_execute(&format!("insert into {table} values (2)")).await.expect("the session goes on");
    // Without [auth], the looked-up user's pools are no longer allowed: they drain.
    std::fs::write(&path, harness::split_config("", "")).unwrap();
    console.simple_query("RELOAD").await.expect("the config reloads");
    assert!(pool_sizes_of(&console, &role).await.is_empty(), "the pools of {role} stayed");
    let _ = std::fs::remove_file(path);
}

/// The `pool_size` column of SHOW POOLS for `user`'s pools.
async fn pool_sizes_of(console: &tokio_postgres::Client, user: &str) -> Vec<String> {
    let rows = console.simple_query("SHOW POOLS").await.unwrap();
    rows.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) if r.get("user") == Some(user) => r.get("pool_size").map(str::to_string),
            _ => None,
        })
        .collect()
}
