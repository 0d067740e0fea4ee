//! `pgsplit explain`: how a statement would be routed and why, without a running cluster. The
//! replicas are assumed up and caught up; lag and read-your-writes change the answer at run time.

use std::fmt::Write;
use std::time::{Duration, Instant};

use crate::classify::{Classifier, ClassifierSettings};
use crate::config::{Settings, StaleFallback};
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
        rule,
    };
    let topology = healthy(db.replicas.iter().map(|r| (r.addr.as_str(), r.weight)).collect());
    let decision = route::decide(&request, &policy, &topology, &|_| 0, true);
    let mut out = String::new();
    let _ = writeln!(out, "statement:  {}", sql.trim());
    let _ = writeln!(out, "intent:     {:?} (kind {}, writes: {})", class.intent, class.kind.name(), class.writes);
    let _ = writeln!(out, "class:      {request_class:?}");
    let _ = writeln!(out, "tables:     {:?}", class.tables);
    let _ = writeln!(out, "functions:  {:?}", class.functions);
    let _ = writeln!(out, "hints:      {:?}", class.hints);
    match policy.rules.first_match(&rule) {
        Some((i, r)) => _ = writeln!(out, "rule:       #{} {:?} (route {:?})", i + 1, r.name, r.route),
        None => _ = writeln!(out, "rule:       none matches"),
    }
    let target = match decision {
        Decision::Go(route::Route::Primary, why) => format!("primary {} (reason: {})", db.primary, why.label()),
        Decision::Go(route::Route::Standby(NodeId::Replica(i)), why) => {
            format!("replica {} (reason: {})", db.replicas[i].addr, why.label())
        }
        Decision::Go(route::Route::Standby(NodeId::Primary), why) => {
            format!("primary {} as a standby (reason: {})", db.primary, why.label())
        }
        Decision::Wait { .. } | Decision::Refuse(_) => "no replica qualifies".to_string(),
    };
    let _ = writeln!(out, "decision:   {target}");
    let _ = writeln!(out, "            (assuming every replica is up and caught up)");
    Ok(out)
}

/// A topology where every replica is up and caught up.
fn healthy(replicas: Vec<(&str, u32)>) -> Topology {
    let mut t = Topology::new("primary".into(), replicas.iter().map(|(a, w)| (Into::into(*a), *w)).collect());
    let limits = Freshness { max_lag: Duration::MAX, max_lag_bytes: u64::MAX, stale_after: Duration::MAX };
    for _ in 0..crate::monitor::topology::RECOVER_SAMPLES {
        let now = Instant::now();
        let sample = |in_recovery| Sample {
            taken: now,
            in_recovery,
            current_lsn: Some(1),
            replay_lsn: Some(1),
            receive_lsn: Some(1),
            replay_age: Some(0.0),
            timeline: None,
            system_id: None,
        };
        let replicas: Vec<_> = replicas.iter().map(|_| Some(sample(true))).collect();
        t = t.next(Some(sample(false)), &replicas, now, limits);
    }
    t
}
