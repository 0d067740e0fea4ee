use std::collections::HashSet;
use std::sync::Arc;

use super::{classifier, classify};
use crate::classify::statement::{MAX_OPERATORS, MAX_QUERY_LEN, MAX_TOKENS};
use crate::classify::{
    CacheStats, Classification, Classifier, ClassifierSettings, Hints, Intent, SessionChange, StatementKind,
};

fn with_functions(functions: &[&str]) -> Classifier {
    let write_functions = functions.iter().map(|f| f.to_string()).collect();
    Classifier::new(ClassifierSettings { cache_size: 8, write_functions })
}

#[test]
fn texts_are_cached_unless_session_commands_hold_values() {
    let c = classifier();
    let first = c.classify("SELECT * FROM t WHERE id = $1");
    let second = c.classify("SELECT * FROM t WHERE id = $1");
    assert!(Arc::ptr_eq(&first, &second));
    let insert = c.classify("INSERT INTO t VALUES (1)");
    assert!(Arc::ptr_eq(&insert, &c.classify("INSERT INTO t VALUES (2)")));
    let begin = c.classify("BEGIN");
    assert!(Arc::ptr_eq(&begin, &c.classify("BEGIN")));
    c.classify("SET a = 1");
    c.classify("SET a = 1");
    c.classify("EXPLAIN (ANALYZE 0) DELETE FROM t");
    assert_eq!(c.stats(), CacheStats { hits: 3, misses: 3, lexed: 3, entries: 3 });
}

#[test]
fn a_zero_sized_cache_parses_every_time() {
    let c = Classifier::new(ClassifierSettings { cache_size: 0, write_functions: HashSet::new() });
    let first = c.classify("SELECT 1");
    let second = c.classify("SELECT 1");
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!(first, second);
    assert_eq!(c.stats(), CacheStats { hits: 0, misses: 2, lexed: 0, entries: 0 });
}

#[test]
fn the_cache_is_bounded_and_evicts_the_least_recent() {
    let c = Classifier::new(ClassifierSettings { cache_size: 2, write_functions: HashSet::new() });
    for sql in ["SELECT a", "SELECT b", "SELECT a", "SELECT c", "SELECT a", "SELECT b"] {
        c.classify(sql);
    }
    // SELECT b was evicted by SELECT c, so only the repeated SELECT as were hits.
    assert_eq!(c.stats(), CacheStats { hits: 2, misses: 4, lexed: 0, entries: 2 });
}

#[test]
fn texts_that_differ_only_slightly_are_kept_apart() {
    let c = classifier();
    for _ in 0..2 {
        assert_eq!(c.classify("SELECT nextval('s')").intent, Intent::Write);
        assert_eq!(c.classify("SELECT nextvak('s')").intent, Intent::Read);
        assert_eq!(c.classify("select nextval('s')").intent, Intent::Write);
    }
    assert_eq!(c.stats().entries, 3);
}

#[test]
fn the_cache_holds_a_bounded_amount_of_text() {
    let c = Classifier::new(ClassifierSettings { cache_size: 100, write_functions: HashSet::new() });
    // Comments are kept in the key as written (literals are not), so each of these keys is 1 MiB.
    for n in 0..40 {
        let head = format!("SELECT n{n} /*");
        let sql = format!("{head}{}*/", "x".repeat(MAX_QUERY_LEN - head.len() - 2));
        assert_eq!(sql.len(), MAX_QUERY_LEN);
        assert_eq!(c.classify(&sql).intent, Intent::Read);
    }
    assert_eq!(c.stats().entries, 32, "32 MiB of text at most");
    let too_long = format!("SELECT '{}'", "x".repeat(MAX_QUERY_LEN));
    assert_eq!(c.classify(&too_long).intent, Intent::Unknown);
    assert_eq!(c.stats().misses, 41);
    assert_eq!(c.stats().entries, 32);
}

#[test]
fn queries_with_too_many_tokens_are_not_parsed() {
    let in_list = |n: usize| format!("SELECT * FROM t WHERE id IN ({})", vec!["1"; n].join(","));
    assert_eq!(classify(&in_list(5_000)).intent, Intent::Read);
    assert_eq!(classify(&in_list(MAX_TOKENS / 2 + 1)).intent, Intent::Unknown);
}

#[test]
fn extra_write_functions_match_with_or_without_schema() {
    let c = with_functions(&["audit.log_event", "Bump", " app.touch "]);
    let writes = |sql: &str| c.classify(sql).writes;
    assert!(writes("SELECT bump(1)"));
    assert!(writes("SELECT anywhere.bump(1)"));
    assert!(writes("SELECT audit.log_event('x')"));
    assert!(writes("SELECT log_event('x')"), "unqualified may resolve to audit.log_event");
    assert!(!writes("SELECT other.log_event('x')"));
    assert!(writes("SELECT * FROM t WHERE touch(id)"));
    assert!(!writes(r#"SELECT "Bump"(1)"#), "quoted names keep their case");
    assert!(!writes("SELECT bumpy(1)"));
    assert_eq!(c.classify("SELECT bump(1)").functions, ["bump"]);
}

#[test]
fn tables_and_functions_are_reported_for_rules() {
    let c = classify(
        r#"SELECT u.id, lower(u.email) FROM public.users u JOIN "Orders" o ON o.user_id = u.id WHERE o.total > (SELECT avg(total) FROM orders)"#,
    );
    assert_eq!(c.tables, ["public.users", "Orders", "orders"]);
    assert_eq!(c.functions, ["lower", "avg"]);
    let listed = |name: &str| c.tables.iter().any(|t| t == name);
    let bare_listed = |name: &str| c.tables.iter().any(|t| t.rsplit('.').next() == Some(name));
    assert!(bare_listed("users"));
    assert!(listed("public.users"));
    assert!(!listed("other.users") && !listed("users"), "users is listed with its schema only");
    assert!(listed("orders"), "an unqualified reference is listed without a schema");
    assert!(!bare_listed("user"));
    assert!(c.functions.iter().any(|f| f == "avg"));
    assert!(!c.functions.iter().any(|f| f == "max"));
}

#[test]
fn lexed_writes_report_their_targets() {
    assert_eq!(classify(r#"INSERT INTO "Quoted"."Table" VALUES (1)"#).tables, ["Quoted.Table"]);
    assert_eq!(classify("DELETE FROM ONLY public.t WHERE x").tables, ["public.t"]);
    assert_eq!(classify("UPDATE t AS x SET a = 1").tables, ["t"]);
    assert_eq!(classify("TRUNCATE ONLY a, b *, ONLY c").tables, ["a", "b", "c"]);
    assert_eq!(classify("LOCK TABLE a, s.b IN SHARE MODE").tables, ["a", "s.b"]);
    assert_eq!(classify("COPY s.t (a) TO STDOUT").tables, ["s.t"]);
    let c = classify("INSERT INTO t (id) VALUES (nextval('t_id_seq'))");
    assert_eq!(c.functions, ["nextval"]);
}

#[test]
fn cte_names_are_not_tables() {
    let c = classify("WITH recent AS (SELECT * FROM orders) SELECT * FROM recent JOIN s.recent r ON true");
    assert_eq!(c.tables, ["orders", "s.recent"]);
    assert_eq!(classify("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x").tables, ["t"]);
}

#[test]
fn several_statements_combine() {
    let c = classify("SELECT * FROM a; DELETE FROM b; SELECT 2");
    assert_eq!((c.intent.clone(), c.kind, c.statements, c.writes), (Intent::Write, StatementKind::Delete, 3, true));
    assert_eq!(c.tables, ["a", "b"]);

    let c = classify("BEGIN; SELECT * FROM a; COMMIT");
    assert_eq!((c.intent.clone(), c.statements, c.writes, c.has_transaction_control), (Intent::Read, 3, true, true));

    let c = classify("SET a = 1; SET LOCAL b = 'x'");
    let a = SessionChange::Set { name: "a".into(), value: "1".into(), local: false };
    let b = SessionChange::Set { name: "b".into(), value: "x".into(), local: true };
    assert_eq!(c.intent, Intent::Session(a.clone()));
    assert_eq!(c.session_changes, [a, b]);
    assert!(!c.writes && !c.has_transaction_control);

    let c = classify("DELETE FROM t; SELECT FROM WHERE (");
    assert_eq!((c.intent.clone(), c.writes), (Intent::Unknown, true));
}

#[test]
fn an_empty_text_is_an_empty_read() {
    let want = Classification {
        intent: Intent::Read,
        writes: false,
        kind: StatementKind::Other,
        tables: vec![],
        functions: vec![],
        hints: Hints::default(),
        statements: 0,
        has_transaction_control: false,
        rolls_back: false,
        session_changes: vec![],
        pins: Vec::new(),
        unpins: Vec::new(),
        deallocates: None,
    };
    assert_eq!(*classify("  -- nothing\n"), want);
}

#[test]
fn deep_expressions_within_the_budget_parse_on_a_small_stack() {
    // Each `a = 1 OR` adds two operators and one level to the tree sqlparser builds.
    let terms = MAX_OPERATORS / 2;
    let sql = format!("SELECT 1 FROM t WHERE {}", vec!["a = 1"; terms].join(" OR "));
    let over = format!("{sql} OR a = 1");
    let (within, beyond) = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || (classify(&sql).intent.clone(), classify(&over).intent.clone()))
        .expect("spawn a test thread")
        .join()
        .expect("no stack overflow");
    assert_eq!(within, Intent::Read);
    assert_eq!(beyond, Intent::Unknown);
}

#[test]
fn the_classifier_is_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Classifier>();
    let c = Arc::new(classifier());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || (0..50).all(|_| c.classify("SELECT * FROM t").intent == Intent::Read))
        })
        .collect();
    assert!(handles.into_iter().all(|h| h.join().expect("thread")));
    let stats = c.stats();
    assert_eq!(stats.hits + stats.misses, 200);
    assert_eq!(stats.entries, 1);
}

#[test]
fn deep_nesting_parses_or_fails_cleanly_on_a_small_stack() {
    let nest = |open: &str, inner: &str, close: &str, depth: usize| {
        format!("SELECT {}{inner}{}", open.repeat(depth), close.repeat(depth))
    };
    let cases = move |depth| {
        vec![
            nest("(", "1", ")", depth),
            nest("(SELECT ", "1", ")", depth),
            nest("NOT ", "true", "", depth),
            nest("- ", "1", "", depth),
            nest("abs(", "1", ")", depth),
            nest("ARRAY[", "1", "]", depth),
            nest("CASE WHEN true THEN ", "1", " END", depth),
            format!("SELECT 1 FROM {}t{}", "(SELECT * FROM ".repeat(depth), ") x".repeat(depth)),
        ]
    };
    // Tokio's worker threads have 2 MiB stacks; every depth up to sqlparser's limit and past it must
    // come back as a read (parsed) or unknown (refused), never overflow.
    let (shallow, every, deep) = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let intents = |depth| cases(depth).iter().map(|sql| classify(sql).intent.clone()).collect::<Vec<_>>();
            let every: Vec<Intent> = (1..=60).flat_map(intents).collect();
            (intents(20), every, intents(500))
        })
        .expect("spawn a test thread")
        .join()
        .expect("no stack overflow");
    assert!(shallow.iter().all(|i| *i == Intent::Read), "{shallow:?}");
    assert!(every.iter().all(|i| matches!(i, Intent::Read | Intent::Unknown)));
    // Past the limit the parser refuses what nests (parentheses, subqueries, calls); the SELECT
    // fast path scans flat chains of prefix operators, ARRAY[ and CASE linearly and reads them.
    let (r, u) = (Intent::Read, Intent::Unknown);
    assert_eq!(deep, [u.clone(), u.clone(), r.clone(), r.clone(), u.clone(), r.clone(), r, u], "{deep:?}");
}
