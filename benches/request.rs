//! One request's path through pgsplit without sockets, stage by stage, as `Session::serve` runs
//! it in transaction pooling: take the request off the client's buffer, inspect it (a warm
//! classifier cache), decide its route (a primary and two caught-up replicas), rewrite it for the
//! server connection (unnamed statements reused), and relay a canned reply the way the session
//! does (expectations queued, the reply read in, taken with `take_batch`, judged by the misroute
//! guard and joined into one write); then all of it chained, as one "request" figure.
//!
//! Three requests: pgbench's `-S -M extended` (Parse, Bind, Describe portal, Execute, Sync) with
//! `[pool] reuse_unnamed` on (the default: the connection already has the statement, pgsplit
//! answers the Parse itself) and off (sent as received), and a simple Query `SELECT 1`.
//!
//! The server connection has no socket: it wraps `Stream::Detached`, and the sends it would make
//! are replaced by `send_outgoing_for_bench`/`send_for_bench` (the same steps as
//! `send_outgoing`/`send` but the write), the reads by `feed_for_bench`. Not measured: socket I/O, the pool checkout and
//! checkin, the parameter sync check, transaction bookkeeping (`TxState`) and the LSN probe rule.
//!
//! At start it prints the heap allocations and bytes each stage costs per request, counted by a
//! global allocator that wraps `System` in this binary only (counting is switched on only then,
//! so the timings do not pay for it).
//!
//! Run with `cargo bench --bench request` (add `-- --warm-up-time 1 --measurement-time 2` for a
//! quick pass; `-- --test` runs each benchmark once).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashSet};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use pgsplit::bench_support::{
    decide, judge, BackendKey, BatchEnd, Decision, DecisionCounts, Freshness, Inspection, Outbox, Outgoing, Policy,
    Prepared, Requester, Route, RoutingState, Sample, ServerConn, StatementIds, Stream, Topology, Verdict, Withheld,
};
use pgsplit::classify::{Classifier, ClassifierSettings};
use pgsplit::config::{self, PoolMode, Settings};
use pgsplit::session::request::{self, Batch, Taken};

#[path = "wire/mod.rs"]
mod wire;
use wire::put_msg;

// ---------------------------------------------------------------------------------------------
// Counting allocations

/// `System`, counting allocations (and reallocations) and their bytes while [`COUNTING`] is on.
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

impl CountingAlloc {
    fn count(size: usize) {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(size as u64, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is passed on to `System` unchanged; counting touches only atomics.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::count(new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations and bytes counted over some calls of one stage.
#[derive(Clone, Copy, Default)]
struct Tally {
    allocs: u64,
    bytes: u64,
}

impl Tally {
    /// Runs `f` with counting on and adds what it allocated.
    fn count<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let (allocs, bytes) = (ALLOCS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
        COUNTING.store(true, Ordering::Relaxed);
        let out = f();
        COUNTING.store(false, Ordering::Relaxed);
        self.allocs += ALLOCS.load(Ordering::Relaxed) - allocs;
        self.bytes += BYTES.load(Ordering::Relaxed) - bytes;
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Wire bytes

/// The limit a session frames client messages with (`limits.max_message_size`'s default order).
const MAX_MESSAGE: usize = 64 << 20;
const INT4: u32 = 23;

/// pgbench `-S -M extended` with its parameter typed int4, as libpq sends it.
fn extended_request() -> Bytes {
    wire::pgbench_select(INT4).freeze()
}

fn simple_request() -> Bytes {
    let mut buf = BytesMut::new();
    put_msg(&mut buf, b'Q', b"SELECT 1\0");
    buf.freeze()
}

/// RowDescription of one int4 column.
fn row_description(column: &str, table_oid: u32, attnum: i16) -> Vec<u8> {
    let mut body = 1i16.to_be_bytes().to_vec();
    body.extend_from_slice(column.as_bytes());
    body.push(0);
    body.extend_from_slice(&table_oid.to_be_bytes());
    body.extend_from_slice(&attnum.to_be_bytes());
    body.extend_from_slice(&INT4.to_be_bytes());
    body.extend_from_slice(&4i16.to_be_bytes());
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body
}

/// DataRow of one text value.
fn data_row(value: &[u8]) -> Vec<u8> {
    let mut body = 1i16.to_be_bytes().to_vec();
    body.extend_from_slice(&(value.len() as i32).to_be_bytes());
    body.extend_from_slice(value);
    body
}

/// The server's reply to pgbench's select: ParseComplete (when the server parses), BindComplete,
/// RowDescription, DataRow, CommandComplete, ReadyForQuery 'I'.
fn extended_reply(parsed_by_server: bool) -> Bytes {
    let mut buf = BytesMut::new();
    if parsed_by_server {
        put_msg(&mut buf, b'1', b"");
    }
    put_msg(&mut buf, b'2', b"");
    put_msg(&mut buf, b'T', &row_description("abalance", 16_397, 3));
    put_msg(&mut buf, b'D', &data_row(b"-2971"));
    put_msg(&mut buf, b'C', b"SELECT 1\0");
    put_msg(&mut buf, b'Z', b"I");
    buf.freeze()
}

fn simple_reply() -> Bytes {
    let mut buf = BytesMut::new();
    put_msg(&mut buf, b'T', &row_description("?column?", 0, 0));
    put_msg(&mut buf, b'D', &data_row(b"1"));
    put_msg(&mut buf, b'C', b"SELECT 1\0");
    put_msg(&mut buf, b'Z', b"I");
    buf.freeze()
}

// ---------------------------------------------------------------------------------------------
// What a session and the shared state hold

/// The configuration `scripts/bench` runs pgsplit with 2 replicas under (defaults otherwise).
fn settings(reuse_unnamed: bool) -> Settings {
    let text = format!(
        r#"
[listen]
addr = "127.0.0.1:6432"

[pool]
mode = "transaction"
size = 20
reuse_unnamed = {reuse_unnamed}

[[users]]
name = "app"
password = "app"

[databases.app]
primary = "127.0.0.1:5432"
replicas = ["127.0.0.1:5433", "127.0.0.1:5434"]
"#
    );
    config::from_str(&text, "bench").expect("the bench's configuration is valid")
}

/// A primary at LSN 1000 with two replicas caught up to it, after enough samples for both to be
/// eligible (the approach of the routing policy's unit tests).
fn topology() -> Topology {
    let replicas = vec![("127.0.0.1:5433".into(), 1), ("127.0.0.1:5434".into(), 1)];
    let mut t = Topology::new("127.0.0.1:5432".into(), replicas);
    let limits =
        Freshness { max_lag: Duration::from_secs(1), max_lag_bytes: 1 << 20, stale_after: Duration::from_secs(5) };
    let sample = |taken, in_recovery| Sample::caught_up(taken, in_recovery, None, None);
    for _ in 0..5 {
        let now = Instant::now();
        t = t.next(Some(sample(now, false)), &[Some(sample(now, true)), Some(sample(now, true))], now, limits);
    }
    t
}

/// What one request kind runs through: the session's own state, the shared state it reads, and
/// one server connection without a socket.
struct Path {
    name: &'static str,
    request: Bytes,
    /// What the server sends once the connection is warm (the statement prepared on it).
    reply: Bytes,
    settings: Settings,
    classifier: ArcSwap<Classifier>,
    policy: Policy,
    topology: ArcSwap<Topology>,
    decisions: DecisionCounts,
    registry: StatementIds,
    routing: RoutingState,
    prepared: Prepared,
    server: ServerConn,
    client_in: BytesMut,
}

impl Path {
    /// `reply` is the warm server reply; `first_reply` the one to the first request, which
    /// prepares the statement on the connection. One request is run through to warm up.
    fn new(name: &'static str, request: Bytes, reuse_unnamed: bool, first_reply: Bytes, reply: Bytes) -> Path {
        let settings = settings(reuse_unnamed);
        let classifier = Classifier::new(ClassifierSettings { cache_size: 1024, write_functions: HashSet::new() });
        let policy = Policy::new(settings.routing.clone()).expect("no rules to compile");
        let server = ServerConn::new(Stream::Detached, "127.0.0.1:5433".into(), BackendKey::default(), BTreeMap::new());
        let mut path = Path {
            name,
            request,
            reply: first_reply,
            settings,
            classifier: ArcSwap::from_pointee(classifier),
            policy,
            topology: ArcSwap::from_pointee(topology()),
            decisions: DecisionCounts::default(),
            registry: StatementIds::default(),
            routing: RoutingState::default(),
            prepared: Prepared::default(),
            server,
            client_in: BytesMut::new(),
        };
        path.run(&mut Tallies::default());
        path.reply = reply;
        for _ in 0..3 {
            path.run(&mut Tallies::default());
        }
        path
    }

    fn reuse_unnamed(&self) -> bool {
        self.settings.pool.reuse_unnamed
    }

    /// What a read of the request leaves in the client buffer: `Stream::read_when_ready` on a
    /// plain socket starts from an empty buffer when nothing is left over, reads into its
    /// thread's scratch buffer and appends exactly what arrived.
    fn read_request(&mut self) {
        if self.client_in.is_empty() {
            self.client_in = BytesMut::new();
        }
        self.client_in.extend_from_slice(&self.request);
    }

    /// (a) `request::take`: the whole request framed off the client buffer.
    fn take(&mut self) -> Batch {
        match request::take(&mut self.client_in, MAX_MESSAGE, true) {
            Ok(Taken::Batch(batch)) => batch,
            other => panic!("a whole request was buffered: {other:?}"),
        }
    }

    /// (b) `Session::inspect`: the classifier loaded, the statements classified (cache hits).
    fn inspect(&mut self, batch: &Batch) -> Inspection {
        let keep_text = !self.policy.rules.is_empty();
        self.routing.inspect(&self.classifier.load(), &batch.bytes, keep_text, &self.prepared)
    }

    /// (c) `dispatch::choose` without its waits: the routing question, the topology snapshot
    /// loaded, `route::decide`, the decision counted.
    fn decide(&self, inspection: &Inspection) -> Route {
        let db = &self.settings.databases["app"];
        let user = &self.settings.users["app"];
        let who = Requester { db, user, application_name: "pgbench", mode: PoolMode::Transaction };
        let read_your_writes = self.policy.settings.read_your_writes;
        let question = self.routing.request(inspection, &who, read_your_writes);
        match decide(&question, &self.policy, &self.topology.load_full(), &|_| 0, false) {
            Decision::Go(route, reason) => {
                self.decisions.count(route, reason);
                route
            }
            other => panic!("two caught-up replicas take the read: {other:?}"),
        }
    }

    /// (d) `Session::send_rewritten` up to the write: a request naming no statement of pgsplit's
    /// goes out as received (`None`), else `Prepared::rewrite` makes its `Outgoing`.
    fn rewrite(&mut self, batch: &Batch, inspection: &Inspection) -> Option<Outgoing> {
        self.prepared.start_request();
        let reuse = self.reuse_unnamed();
        if !self.prepared.touches(&batch.bytes, reuse) {
            return None;
        }
        Some(self.prepared.rewrite(&self.registry, &batch.bytes, &inspection.parsed, &mut self.server, reuse, &[]))
    }

    /// The send minus the socket: the replies the request owes are expected, and a rewrite's
    /// buffers go back to the connection for the next one.
    fn owe(&mut self, batch: &Batch, out: Option<Outgoing>) {
        match out {
            Some(out) => self.server.send_outgoing_for_bench(out, batch.summary.pipeline),
            None => self.server.send_for_bench(&batch.bytes, batch.summary.pipeline),
        }
    }

    /// (e) the reply read in and relayed as `Session::forward_replies` does for a fresh request
    /// (the misroute guard is on): pieces taken with `take_batch`, judged, preliminaries withheld
    /// until the request ran, all joined into the one write the client gets.
    fn relay(&mut self) -> Bytes {
        self.server.feed_for_bench(&self.reply);
        let mut withheld: Option<Withheld> = Some(Withheld::new());
        let mut outbox = Outbox::default();
        while let Some((piece, end)) = self.server.take_batch().expect("the canned reply is well formed") {
            if let Some(pieces) = withheld.as_mut() {
                match judge(&piece) {
                    Verdict::Undecided if end == BatchEnd::More => {
                        pieces.push(piece);
                        continue;
                    }
                    Verdict::Undecided | Verdict::Ran => outbox.extend(withheld.take()),
                    other => panic!("the canned reply ran: {other:?}"),
                }
            }
            outbox.push(piece);
            if end != BatchEnd::More && self.server.settled() && !self.server.in_pipeline() {
                return outbox.take();
            }
        }
        panic!("the canned reply settles the request")
    }

    /// (f) a→e chained; each stage's allocations added to `tallies`.
    fn run(&mut self, tallies: &mut Tallies) -> Bytes {
        tallies.read.count(|| self.read_request());
        let batch = tallies.take.count(|| self.take());
        let inspection = tallies.inspect.count(|| self.inspect(&batch));
        let route = tallies.decide.count(|| self.decide(&inspection));
        debug_assert!(matches!(route, Route::Standby(_)));
        let out = tallies.rewrite.count(|| self.rewrite(&batch, &inspection));
        tallies.relay.count(|| {
            self.owe(&batch, out);
            self.relay()
        })
    }
}

/// Allocations per stage over a number of requests.
#[derive(Default)]
struct Tallies {
    read: Tally,
    take: Tally,
    inspect: Tally,
    decide: Tally,
    rewrite: Tally,
    relay: Tally,
}

impl Tallies {
    fn rows(&self) -> [(&'static str, Tally); 6] {
        [
            ("client read", self.read),
            ("a take", self.take),
            ("b inspect", self.inspect),
            ("c decide", self.decide),
            ("d rewrite", self.rewrite),
            ("e relay", self.relay),
        ]
    }
}

/// The three request kinds, warmed up.
fn paths() -> Vec<Path> {
    vec![
        Path::new("extended", extended_request(), true, extended_reply(true), extended_reply(false)),
        Path::new("extended_no_reuse", extended_request(), false, extended_reply(true), extended_reply(true)),
        Path::new("simple", simple_request(), true, simple_reply(), simple_reply()),
    ]
}

/// Prints each stage's heap allocations and bytes per request, averaged over many requests.
fn print_allocations(paths: &mut [Path]) {
    const REQUESTS: u64 = 1000;
    println!("heap allocations per request ({REQUESTS} requests each; bytes as requested):");
    for path in paths {
        let mut tallies = Tallies::default();
        for _ in 0..REQUESTS {
            black_box(path.run(&mut tallies));
        }
        let mut total = Tally::default();
        for (stage, tally) in tallies.rows() {
            total.allocs += tally.allocs;
            total.bytes += tally.bytes;
            println!("  {:<18} {:<12} {:>5.2} allocs {:>8.1} B", path.name, stage, per(tally.allocs), per(tally.bytes));
        }
        println!("  {:<18} {:<12} {:>5.2} allocs {:>8.1} B", path.name, "f whole", per(total.allocs), per(total.bytes));
    }

    fn per(n: u64) -> f64 {
        n as f64 / REQUESTS as f64
    }
}

// ---------------------------------------------------------------------------------------------
// Benchmarks

fn stages(c: &mut Criterion) {
    let mut paths = paths();
    print_allocations(&mut paths);
    for mut path in paths {
        let mut group = c.benchmark_group(format!("request/{}", path.name));
        bench_take(&mut group, &path);
        bench_inspect(&mut group, &mut path);
        bench_decide(&mut group, &mut path);
        bench_rewrite(&mut group, &mut path);
        bench_relay(&mut group, &mut path);
        group.bench_function("f_whole", |b| b.iter(|| path.run(&mut Tallies::default())));
        group.finish();
    }
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn bench_take(group: &mut Group, path: &Path) {
    let refill = || BytesMut::from(&path.request[..]);
    group.bench_function("a_take", |b| {
        b.iter_batched(
            refill,
            |mut buf| (request::take(&mut buf, MAX_MESSAGE, true).expect("well framed"), buf),
            BatchSize::SmallInput,
        )
    });
}

/// A request taken off the client buffer, and its inspection, as the stages after them get it.
fn taken(path: &mut Path) -> (Batch, Inspection) {
    path.read_request();
    let batch = path.take();
    let inspection = path.inspect(&batch);
    (batch, inspection)
}

fn bench_inspect(group: &mut Group, path: &mut Path) {
    let (batch, _) = taken(path);
    group.bench_function("b_inspect", |b| b.iter(|| path.inspect(black_box(&batch))));
}

fn bench_decide(group: &mut Group, path: &mut Path) {
    let (_, inspection) = taken(path);
    group.bench_function("c_decide", |b| b.iter(|| path.decide(black_box(&inspection))));
}

fn bench_rewrite(group: &mut Group, path: &mut Path) {
    let (batch, inspection) = taken(path);
    group.bench_function("d_rewrite", |b| b.iter(|| path.rewrite(black_box(&batch), &inspection)));
}

/// The expectations of one rewrite queued again for each reply: what the send leaves, as often as
/// needed, without rewriting each time.
fn bench_relay(group: &mut Group, path: &mut Path) {
    let (batch, inspection) = taken(path);
    let out = path.rewrite(&batch, &inspection);
    group.bench_function("e_relay", |b| {
        b.iter_batched(
            || out.clone(),
            |out| {
                path.owe(&batch, out);
                path.relay()
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, stages);
criterion_main!(benches);
