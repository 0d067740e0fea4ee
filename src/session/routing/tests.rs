use super::*;

#[test]
fn a_write_pipelined_behind_the_probe_keeps_the_session_dirty() {
    let mut s = RoutingState::default();
    s.wrote();
    s.probe_sent();
    s.wrote();
    assert_eq!(s.probe_answered(Some(100), true), Some(100));
    assert!(s.dirty, "the second write is not covered by the probe");
    assert_eq!(s.write_lsn, Some(100));
    s.probe_sent();
    assert_eq!(s.probe_answered(Some(90), true), Some(90));
    assert!(!s.dirty);
    assert_eq!(s.write_lsn, Some(100), "the write LSN never goes back");
}

#[test]
fn a_rolled_back_commit_leaves_the_session_as_dirty_as_before_its_transaction() {
    let mut clean = RoutingState::default();
    clean.wrote();
    clean.wrote();
    clean.probe_sent();
    clean.probe_rolled_back();
    assert!(!clean.dirty && !clean.tx_wrote, "its writes never happened");

    let mut earlier = RoutingState::default();
    earlier.wrote();
    earlier.probe_sent();
    assert_eq!(earlier.probe_answered(None, true), None, "the earlier write's LSN is unknown");
    earlier.wrote();
    earlier.probe_sent();
    earlier.probe_rolled_back();
    assert!(earlier.dirty, "the earlier write is still not covered");

    let mut behind = RoutingState::default();
    behind.wrote();
    behind.probe_sent();
    behind.wrote();
    behind.probe_rolled_back();
    assert!(behind.dirty, "a write sent behind the commit is not undone");
}

#[test]
fn an_uncommitted_probe_changes_nothing() {
    let mut s = RoutingState::default();
    s.wrote();
    s.probe_sent();
    assert_eq!(s.probe_answered(Some(5), false), None);
    assert!(s.dirty && s.write_lsn.is_none());
}

/// The inspection of one simple Query of `sql`.
fn query(sql: &str) -> Inspection {
    use crate::classify::ClassifierSettings;
    use crate::protocol::frame::tests::msg;
    let classifier = Classifier::new(ClassifierSettings { cache_size: 8, ..Default::default() });
    let body = format!("{sql}\0");
    RoutingState::default().inspect(&classifier, &msg(b'Q', body.as_bytes()), false, &Prepared::default())
}

#[test]
fn a_session_that_learns_its_lsn_lazily_probes_behind_its_first_read_on_the_primary() {
    let (read, read_only, begin, write) =
        (query("select 1"), query("begin read only"), query("begin"), query("insert into t values (1)"));
    let mut s = RoutingState::default();
    assert!(!s.wants_lazy_probe(&read, Route::Primary), "a clean session needs no LSN");
    s.wrote();
    assert!(!s.wants_probe(&write, Route::Primary, false) && !s.wants_lazy_probe(&write, Route::Primary));
    s.tx_wrote = false; // the write's transaction ended
    assert!(s.wants_lazy_probe(&read, Route::Primary));
    assert!(s.wants_lazy_probe(&read_only, Route::Primary), "a read-only transaction too");
    assert!(!s.wants_lazy_probe(&begin, Route::Primary), "not a transaction that may write");
    assert!(!s.wants_lazy_probe(&read, Route::Standby(NodeId::at(0))));
    s.probe_sent();
    assert!(!s.wants_lazy_probe(&read, Route::Primary), "one probe in flight at a time");
    assert_eq!(s.probe_answered(Some(7), false), Some(7), "it covers finished transactions only");
    assert!(!s.dirty && s.write_lsn == Some(7));
    assert!(!s.wants_lazy_probe(&read, Route::Primary), "the LSN is known");
}

#[test]
fn a_lazy_probe_does_not_cover_a_write_pipelined_behind_it() {
    let mut s = RoutingState::default();
    s.wrote();
    s.tx_wrote = false;
    s.probe_sent();
    s.wrote();
    assert_eq!(s.probe_answered(Some(7), false), Some(7));
    assert!(s.dirty && s.tx_wrote, "the write behind it, in a transaction still open");
}

#[test]
fn only_a_sample_asked_for_after_every_write_ended_bounds_their_lsn() {
    use std::time::Duration;
    let bound = |asked: Instant, lsn: u64| Some(InsertBound { asked, lsn, timeline: 3 });
    let mut s = RoutingState::default();
    s.wrote();
    let before = Instant::now();
    s.bound_by_sample(bound(before, 50));
    assert!(s.dirty, "the write has not ended");
    s.outside_transaction();
    let ended = s.writes_ended.expect("the write ended");
    s.bound_by_sample(bound(ended, 60));
    assert!(s.dirty, "asked for no later than the write ended");
    s.bound_by_sample(bound(ended + Duration::from_millis(1), 70));
    assert!(!s.dirty && s.write_lsn == Some(70) && s.write_timeline == Some(3));

    s.wrote();
    s.bound_by_sample(bound(ended + Duration::from_secs(1), 80));
    assert!(s.dirty && s.write_lsn == Some(70), "a new write is not covered by an older end");
    s.outside_transaction();
    s.probe_sent();
    s.bound_by_sample(bound(Instant::now() + Duration::from_secs(1), 90));
    assert!(s.dirty, "a probe in flight answers for them");
    s.probe_answered(Some(95), true);
    s.wrote();
    s.outside_transaction();
    s.bound_by_sample(bound(Instant::now() + Duration::from_secs(1), 85));
    assert_eq!(s.write_lsn, Some(95), "the write LSN never goes back");
    assert!(!s.dirty);
}

#[test]
fn a_session_asks_for_its_write_lsn() {
    let asks = |params: &[(&str, &str)]| {
        let params: Vec<_> = params.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        let s = RoutingState::from_params(&params);
        (s.reports_write_lsn(false), s.reports_write_lsn(true))
    };
    assert_eq!(asks(&[]), (false, true), "the config decides");
    assert_eq!(asks(&[("pgsplit.report_write_lsn", "on")]), (true, true));
    assert_eq!(asks(&[("PGSPLIT.REPORT_WRITE_LSN", "False")]), (false, false));
    assert_eq!(asks(&[("pgsplit.report_write_lsn", "maybe")]), (false, true), "not a boolean");
    let mut s = RoutingState::from_params(&[("pgsplit.report_write_lsn".into(), "1".into())]);
    s.apply_change(&SessionChange::ResetAll);
    assert!(!s.reports_write_lsn(false), "RESET ALL hands it back to the config");
}

#[test]
fn session_settings() {
    let s = RoutingState::from_params(&[
        ("pgsplit.route".into(), "Primary".into()),
        ("pgsplit.min_lsn".into(), "0/10".into()),
        ("default_transaction_read_only".into(), "on".into()),
    ]);
    assert_eq!(s.route_hint, Some(RouteTarget::Primary));
    assert_eq!(s.min_lsn, Some(16));
    assert!(s.read_only_default);
}

#[test]
fn rules_match_the_text_sent_while_texts_differing_in_literals_share_a_classification() {
    use crate::classify::ClassifierSettings;
    use crate::protocol::frame::tests::msg;
    use crate::route::rules::{tests::rule, Rules};

    let classifier = Classifier::new(ClassifierSettings { cache_size: 8, ..Default::default() });
    let rule = rule("id 2", |r| r.regex = Some("id = 2$".into()));
    let rules = Rules::compile(&[rule]).expect("a valid regex");
    let mut s = RoutingState::default();
    let mut inspect =
        |sql: &str| s.inspect(&classifier, &msg(b'Q', format!("{sql}\0").as_bytes()), true, &Prepared::default());
    let (one, two) = (inspect("SELECT * FROM t WHERE id = 1"), inspect("SELECT * FROM t WHERE id = 2"));
    assert!(Arc::ptr_eq(&one.statements[0], &two.statements[0]), "one cache entry for both");
    let matches = |i: &Inspection| {
        let c = i.first().expect("a statement");
        let sql = i.first_text.as_deref().unwrap_or("");
        let ctx = RuleContext {
            database: "app",
            user: "app",
            application_name: "",
            kind: c.kind.name(),
            tables: &c.tables,
            functions: &c.functions,
            sql,
        };
        rules.first_match(&ctx).is_some()
    };
    assert!(!matches(&one));
    assert!(matches(&two), "the regex sees the literal the client sent");
}
