//! A login storm and a crowd of idle clients, for `scripts/bench`'s idle suite: opens COUNT
//! connections (at most CONCURRENCY logging in at once), runs one `SELECT 1` on each, reports how
//! long the logins took and how many failed, then holds them all idle until stdin closes or a
//! line arrives, and closes them.
//!
//! Usage: storm CONNINFO COUNT CONCURRENCY [--cached-keys]
//!
//! Prints `ready ok=N errors=E seconds=S client_cpu=C` once every connection is open (or
//! failed), then `closed` after letting them go. C is this client's own CPU seconds for the
//! storm: its side of SCRAM (PBKDF2, 4,096 HMACs a login) runs on the same cores as the proxy,
//! so C over the machine's cores is the least time the storm can take here, whatever the proxy.
//!
//! With `--cached-keys` the logins are made by `keyed` instead of tokio-postgres: each salt's
//! PBKDF2 is computed once and reused, as if every client ran it on a CPU of its own, so the
//! storm measures the proxy rather than this client. Everything else in each login is done.

use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_postgres::NoTls;

mod keyed;

/// A connection held idle once logged in; dropping it closes it.
#[expect(dead_code, reason = "held for its drop, never read")]
enum Held {
    Driver(tokio_postgres::Client),
    Keyed(TcpStream),
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (conninfo, count, concurrency, cached) = match &args[1..] {
        [conninfo, count, concurrency] => (conninfo, count, concurrency, false),
        [conninfo, count, concurrency, flag] if flag == "--cached-keys" => (conninfo, count, concurrency, true),
        _ => {
            eprintln!("usage: storm CONNINFO COUNT CONCURRENCY [--cached-keys]");
            std::process::exit(2);
        }
    };
    let (count, concurrency): (usize, usize) = match (count.parse(), concurrency.parse()) {
        (Ok(c), Ok(k)) if c > 0 && k > 0 => (c, k),
        _ => {
            eprintln!("storm: COUNT and CONCURRENCY must be positive integers");
            std::process::exit(2);
        }
    };
    let keyed = match cached.then(|| keyed::Target::new(conninfo)).transpose() {
        Ok(keyed) => keyed.map(Arc::new),
        Err(e) => {
            eprintln!("storm: {e}");
            std::process::exit(2);
        }
    };
    let gate = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let results: Vec<Result<Held, String>> = stream::iter(0..count)
        .map(|_| {
            let (gate, conninfo, keyed) = (gate.clone(), conninfo.clone(), keyed.clone());
            // Each login is a task of its own: the client's side of SCRAM (PBKDF2) is CPU work,
            // and logins polled inside one task would all run on one thread, so the storm would
            // measure this client rather than the proxy.
            let login = tokio::spawn(async move {
                let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
                let login = async {
                    if let Some(keyed) = keyed {
                        return keyed.login().await.map(Held::Keyed);
                    }
                    let (client, conn) = tokio_postgres::connect(&conninfo, NoTls).await.map_err(|e| e.to_string())?;
                    tokio::spawn(conn);
                    client.simple_query("SELECT 1").await.map_err(|e| e.to_string())?;
                    Ok(Held::Driver(client))
                };
                // A proxy that stops accepting must not hang the storm: a login gets 30 s.
                tokio::time::timeout(Duration::from_secs(30), login).await.map_err(|_| "login timed out".to_string())?
            });
            async move { login.await.map_err(|e| e.to_string())? }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let client_cpu = own_cpu_seconds();
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    if let Some(first) = errors.first() {
        eprintln!("storm: first error: {first}");
    }
    println!(
        "ready ok={} errors={} seconds={seconds:.3} client_cpu={client_cpu:.3}",
        count - errors.len(),
        errors.len()
    );
    // Held idle until told to go.
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    })
    .await
    .ok();
    drop(results);
    println!("closed");
}

/// User and system CPU seconds this process has used so far (all its threads).
fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
