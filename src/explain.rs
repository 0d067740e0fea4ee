//! `pgsplit explain`: how a statement would be routed and why, without a running cluster. The
//! replicas are assumed up and caught up; lag and read-your-writes change the answer at run time.

use std::fmt::Write;
use std::time::{Duration, Instant};

use crate::classify::{format_lsn, Classifier, ClassifierSettings, Hints, Intent};
use crate::config::{DatabaseSettings, Settings, StaleFallback};
use crate::monitor::topology::{Freshness, Sample};
use crate::monitor::{NodeId, Topology};
use crate::route::{self, Decision, Policy, Request, RuleContext};
use crate::session::routing::{Inspection, RoutingState};

/// Who runs the statement, for rules.
pub struct Context<'a> {
    pub database: &'a str,
    pub user: &'a str,
    pub application_name: &'a str,
}

/// Explains the routing of `sql`; the text is meant for people.
pub fn explain(settings: &Settings, sql: &str, who: &Context) -> Result<String, String> {
    let db =
        settings.databases.get(who.database).ok_or_else(|| format!("no database {:?} in the config", who.database))?;
    let mut routing = settings.routing.clone();
    routing.stale_fallback = StaleFallback::Primary;
    let policy = Policy::new(routing)?;
    let write_functions = settings.routing.write_functions.iter().cloned().collect();
    let classifier = Classifier::new(ClassifierSettings { cache_size: 0, write_functions });
    let class = classifier.classify(sql);
    let inspection = Inspection {
        statements: std::iter::once(class.clone()).collect(),
        first_text: Some(sql.to_string()),
        ..Default::default()
    };
    let state = RoutingState::default();
    let request_class = state.class_of(&inspection);
    let rule = RuleContext {
        database: who.database,
        user: who.user,
        application_name: who.application_name,
        kind: class.kind.name(),
        tables: &class.tables,
        functions: &class.functions,
        sql,
    };
    let request = Request {
        class: request_class,
        hint: state.hint(&inspection),
        min_lsn: class.hints.min_lsn,
        lsn_timeline: None,
        previous: None,
        rule,
    };
    let topology = healthy(db.replicas.iter().map(|r| (r.addr.as_str(), r.weight)).collect());
    let decision = route::decide(&request, &policy, &topology, &|_| 0, true);
    let mut out = String::new();
    let _ = writeln!(out, "statement:  {}", sql.trim());
    let _ = writeln!(out, "intent:     {} (kind {})", intent(&class.intent), class.kind.name());
    let _ = writeln!(out, "class:      {}", request_class.name());
    let _ = writeln!(out, "tables:     {}", list(&class.tables));
    let _ = writeln!(out, "functions:  {}", list(&class.functions));
    let _ = writeln!(out, "hints:      {}", hints(&class.hints));
    match policy.rules.first_match(&rule) {
        Some((i, r)) => _ = writeln!(out, "rule:       #{} \"{}\" (route {})", i + 1, r.name, r.route.name()),
        None => _ = writeln!(out, "rule:       none matches"),
    }
    let target = target(decision, db, &class.intent);
    let _ = writeln!(out, "decision:   {target}");
    let _ = writeln!(out, "            (assuming every replica is up and caught up)");
    Ok(out)
}

/// Where the decision sends the statement, and why.
fn target(decision: Decision, db: &DatabaseSettings, intent: &Intent) -> String {
    let because = |why: route::Reason| match intent {
        Intent::Unknown if why == route::Reason::Write => {
            "reason: pgsplit could not parse the statement, and sends what it cannot parse to the primary".to_string()
        }
        _ => format!("reason: {}", why.label()),
    };
    match decision {
        Decision::Go(route::Route::Primary, why) => format!("primary {} ({})", db.primary, because(why)),
        Decision::Go(route::Route::Standby(NodeId::Replica(i)), why) => {
            format!("replica {} ({})", db.replicas[i].addr, because(why))
        }
        Decision::Go(route::Route::Standby(NodeId::Primary), why) => {
            format!("primary {} as a standby ({})", db.primary, because(why))
        }
        Decision::Wait { .. } | Decision::Refuse(_) => "no replica qualifies".to_string(),
    }
}

/// What the statement does, in words.
fn intent(intent: &Intent) -> String {
    match intent {
        Intent::Read => "read".into(),
        Intent::Write => "write".into(),
        Intent::Begin { read_only: Some(true) } => "begin a read-only transaction".into(),
        Intent::Begin { read_only: Some(false) } => "begin a read-write transaction".into(),
        Intent::Begin { read_only: None } => "begin a transaction".into(),
        Intent::EndTransaction { rollback: true } => "roll back the transaction".into(),
        Intent::EndTransaction { rollback: false } => "end the transaction".into(),
        Intent::Savepoint => "savepoint".into(),
        Intent::Session(_) => "change session state (SET, RESET or DISCARD)".into(),
        Intent::Unknown => "not understood: pgsplit could not parse this statement".into(),
    }
}

/// Names separated by commas, or `none`.
fn list(names: &[String]) -> String {
    match names.is_empty() {
        true => "none".into(),
        false => names.join(", "),
    }
}

/// The `pgsplit:` comment hints as they are written, or `none`.
fn hints(hints: &Hints) -> String {
    let route = hints.route.map(|r| format!("route={}", r.name()));
    let min_lsn = hints.min_lsn.map(|lsn| format!("min_lsn={}", format_lsn(lsn)));
    let given: Vec<String> = route.into_iter().chain(min_lsn).collect();
    match given.is_empty() {
        true => "none".into(),
        false => given.join(" "),
    }
}

/// A topology where every replica is up and caught up.
fn healthy(replicas: Vec<(&str, u32)>) -> Topology {
    let mut t = Topology::new("primary".into(), replicas.iter().map(|(a, w)| (Into::into(*a), *w)).collect());
    let limits = Freshness { max_lag: Duration::MAX, max_lag_bytes: u64::MAX, stale_after: Duration::MAX };
    for _ in 0..crate::monitor::topology::RECOVER_SAMPLES {
        let now = Instant::now();
        let sample = |in_recovery| Sample {
            asked: now,
            taken: now,
            in_recovery,
            current_lsn: Some(1),
            insert_lsn: None,
            replay_lsn: Some(1),
            receive_lsn: Some(1),
            replay_age: Some(0.0),
            timeline: None,
            system_id: None,
            wal_pages: None,
        };
        let replicas: Vec<_> = replicas.iter().map(|_| Some(sample(true))).collect();
        t = t.next(Some(sample(false)), &replicas, now, limits);
    }
    t
}
