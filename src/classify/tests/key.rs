//! The cache key: statements that differ only in literals share an entry, and nothing whose
//! meaning depends on a literal's value is answered for another text.

use std::collections::HashSet;
use std::sync::Arc;

use super::classifier;
use crate::classify::lexer::split;
use crate::classify::statement::MAX_QUERY_LEN;
use crate::classify::{key, Classifier, ClassifierSettings, Intent, RouteTarget, SessionChange};

/// The key of a text, or the text itself when nothing in it is replaced.
fn key_of(sql: &str) -> String {
    let mut buf = String::new();
    match key::write(&split(sql), &mut buf).replaced {
        true => buf,
        false => sql.to_string(),
    }
}

/// A classifier with no cache: what each text means on its own.
fn fresh() -> Classifier {
    Classifier::new(ClassifierSettings { cache_size: 0, write_functions: HashSet::new() })
}

/// pgbench's TPC-B statements, twice with different values.
const TPCB: [[&str; 5]; 2] = [
    [
        "UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 181234;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 181234;",
        "UPDATE pgbench_tellers SET tbalance = tbalance + -4321 WHERE tid = 17;",
        "UPDATE pgbench_branches SET bbalance = bbalance + -4321 WHERE bid = 2;",
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (17, 2, 181234, -4321, CURRENT_TIMESTAMP);",
    ],
    [
        "UPDATE pgbench_accounts SET abalance = abalance + -77 WHERE aid = 5;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 5;",
        "UPDATE pgbench_tellers SET tbalance = tbalance + -77 WHERE tid = 3;",
        "UPDATE pgbench_branches SET bbalance = bbalance + -77 WHERE bid = 1;",
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (3, 1, 5, -77, CURRENT_TIMESTAMP);",
    ],
];

#[test]
fn statements_differing_only_in_literals_share_an_entry() {
    let c = classifier();
    let first: Vec<_> = TPCB[0].iter().map(|sql| c.classify(sql)).collect();
    for (sql, earlier) in TPCB[1].iter().zip(&first) {
        let again = c.classify(sql);
        assert!(Arc::ptr_eq(&again, earlier), "{sql}");
        assert_eq!(*again, *fresh().classify(sql), "{sql}");
    }
    assert_eq!((c.stats().hits, c.stats().misses, c.stats().entries), (5, 5, 5));
    assert_eq!(
        key_of(TPCB[0][0]),
        "UPDATE pgbench_accounts SET abalance = abalance + -\0i WHERE aid = \0i;",
        "the sign is an operator, not part of the literal"
    );
    // So a positive delta is another entry: one per sign, not per value.
    assert_ne!(key_of(TPCB[0][0]), key_of("UPDATE pgbench_accounts SET abalance = abalance + 77 WHERE aid = 5;"));
    let strings = [
        "SELECT * FROM t WHERE a = 'x' AND b = E'\\n' AND c = $$y$$",
        "SELECT * FROM t WHERE a = 'yy' AND b = e'z' AND c = $q$w$q$",
    ];
    assert_eq!(key_of(strings[0]), key_of(strings[1]));
    let decimals = ["SELECT 1.5, .5, 3 FROM t", "SELECT 22.0, .25, 4 FROM t"];
    assert_eq!(key_of(decimals[0]), key_of(decimals[1]));
}

#[test]
fn literals_of_another_form_or_that_lex_loosely_keep_their_own_entry() {
    assert_ne!(key_of("SELECT 1 FROM t"), key_of("SELECT 1.0 FROM t"));
    assert_ne!(key_of("SELECT 1 FROM t"), key_of("SELECT '1' FROM t"));
    assert_ne!(key_of("SELECT 'a' FROM t"), key_of("SELECT E'a' FROM t"));
    for loose in ["SELECT 1e5 FROM t", "SELECT 10or x FROM t", "SELECT 1.2.3 FROM t", "SELECT 1_000 FROM t"] {
        assert_eq!(key_of(loose), loose, "numbers the lexer scans loosely stay as written");
    }
    assert_eq!(key_of("SELECT $1 FROM t WHERE a = $2"), "SELECT $1 FROM t WHERE a = $2", "parameters are kept");
}

/// Pairs that differ only in literals whose values change what the text means: each text must be
/// answered as it means on its own, whichever came first. Replacing every literal in every key
/// would answer the second of each pair with the first one's classification.
const VALUE_DEPENDENT: &[(&str, &str)] = &[
    ("SET pgsplit.route = 'replica'", "SET pgsplit.route = 'primary'"),
    ("SET pgsplit.min_lsn = '0/1'", "SET pgsplit.min_lsn = '16/B374D848'"),
    ("SET statement_timeout = 5", "SET statement_timeout = 6000"),
    ("SET TRANSACTION SNAPSHOT '00000003-0000001B-1'", "SET TRANSACTION SNAPSHOT '00000004-0000002C-1'"),
    ("EXPLAIN (ANALYZE 0) SELECT nextval('s')", "EXPLAIN (ANALYZE 1) SELECT nextval('s')"),
    ("EXPLAIN (ANALYZE 'off') DELETE FROM t", "EXPLAIN (ANALYZE 'on') DELETE FROM t"),
    ("SELECT 1; SET pgsplit.route = 'replica'", "SELECT 2; SET pgsplit.route = 'primary'"),
    ("UPDATE t SET a = 1; SET LOCAL work_mem = '64MB'", "UPDATE t SET a = 2; SET LOCAL work_mem = '1GB'"),
];

#[test]
fn literals_whose_values_count_are_never_shared() {
    for order in [0, 1] {
        let c = classifier();
        for pair in VALUE_DEPENDENT {
            let (a, b) = if order == 0 { *pair } else { (pair.1, pair.0) };
            let (first, second) = (c.classify(a), c.classify(b));
            assert_eq!(*first, *fresh().classify(a), "{a}");
            assert_eq!(*second, *fresh().classify(b), "{b} after {a}");
            assert_ne!(*first, *second, "the pair must mean different things: {a} / {b}");
        }
    }
    let c = classifier();
    let session = |sql: &str| c.classify(sql).session_changes.clone();
    assert_eq!(session("SELECT 1; SET pgsplit.route = 'replica'")[0], set("pgsplit.route", "replica"));
    assert_eq!(session("SELECT 2; SET pgsplit.route = 'primary'")[0], set("pgsplit.route", "primary"));
    assert_eq!(c.classify("EXPLAIN (ANALYZE 0) SELECT nextval('s')").intent, Intent::Read);
    assert_eq!(c.classify("EXPLAIN (ANALYZE 1) SELECT nextval('s')").intent, Intent::Write);
}

fn set(name: &str, value: &str) -> SessionChange {
    SessionChange::Set { name: name.into(), value: value.into(), local: false }
}

#[test]
fn hints_and_function_names_are_part_of_the_key() {
    let c = classifier();
    let route = |sql: &str| c.classify(sql).hints.route;
    assert_eq!(route("/* pgsplit: route=replica */ SELECT * FROM t WHERE id = 1"), Some(RouteTarget::Replica));
    assert_eq!(route("/* pgsplit: route=primary */ SELECT * FROM t WHERE id = 2"), Some(RouteTarget::Primary));
    let lsn = |sql: &str| c.classify(sql).hints.min_lsn;
    assert_eq!(lsn("SELECT * FROM t WHERE id = 1 -- pgsplit: min_lsn=0/10"), Some(0x10));
    assert_eq!(lsn("SELECT * FROM t WHERE id = 2 -- pgsplit: min_lsn=0/20"), Some(0x20));
    assert_eq!(c.classify("SELECT nextval('a')").intent, Intent::Write);
    assert_eq!(c.classify("SELECT nextvak('b')").intent, Intent::Read);
    let config = c.classify("SELECT set_config('pgsplit.route', 'replica', false)");
    assert!(config.writes && config.functions == ["set_config"], "{config:?}");
    let other = c.classify("SELECT set_config('application_name', 'x', false)");
    assert!(Arc::ptr_eq(&config, &other), "set_config is a write whatever it sets");
}

#[test]
fn a_text_too_long_to_parse_never_takes_a_shorter_texts_answer() {
    let c = classifier();
    assert_eq!(c.classify("SELECT 'x' FROM t").intent, Intent::Read);
    let long = format!("SELECT '{}' FROM t", "x".repeat(MAX_QUERY_LEN));
    assert_eq!(key_of(&long), key_of("SELECT 'x' FROM t"));
    assert_eq!(c.classify(&long).intent, Intent::Unknown, "past the parser's limit");
}

#[test]
fn a_text_holding_nul_is_not_cached() {
    let c = classifier();
    let nul = "SELECT \0i FROM t";
    assert_eq!(key_of("SELECT 1 FROM t"), nul, "a key with a marker is spelled like this text");
    c.classify("SELECT 1 FROM t");
    let first = c.classify(nul);
    assert!(!Arc::ptr_eq(&first, &c.classify(nul)));
    assert_eq!(*first, *fresh().classify(nul));
    assert_eq!((c.stats().hits, c.stats().entries), (0, 1));
}

/// What [`key::quick`] says of `sql`, checked against the full cut: whenever it answers, the
/// same key (or the same "the text is its own key").
fn check_quick(sql: &str) {
    let (mut quick_buf, mut full_buf) = (String::new(), String::new());
    let cut = split(sql);
    let full = key::write(&cut, &mut full_buf);
    let quick = key::quick(sql, &mut quick_buf);
    // Its contract: a text of several statements, or with a token that never ends (the server
    // rejects it), is left to the full cut.
    if cut.pieces.len() > 1 || cut.pieces.iter().any(|p| p.unterminated) {
        assert_eq!(quick, None, "{sql:?}");
    }
    let Some(replaced) = quick else { return };
    assert_eq!(replaced, full.replaced, "{sql:?}");
    if replaced {
        assert_eq!(quick_buf, full_buf, "{sql:?}");
    }
}

#[test]
fn the_one_pass_key_is_the_full_cuts_key() {
    use super::table::{CONTROL, FUNCTIONS, ORMS, PGBENCH, PSQL, TRICKY, UTILITY, WRITES};
    let cases = [ORMS, PSQL, PGBENCH, WRITES, FUNCTIONS, UTILITY, CONTROL, TRICKY].concat();
    let mut answered = 0;
    for sql in cases.iter().map(|c| c.0).chain(TPCB.concat()) {
        check_quick(sql);
        answered += usize::from(key::quick(sql, &mut String::new()).is_some());
    }
    assert!(answered > 50, "the quick pass answers the common texts ({answered})");
    // Texts made of the pieces where lexing is subtle, in every order a small generator finds.
    const PIECES: [&str; 32] = [
        "select ",
        "SELECT ",
        "update t set a = ",
        "insert into t values (",
        "(",
        ")",
        "set x = ",
        "with ",
        "'a''b' ",
        "E'x\\'y' ",
        "e'z'",
        "$$y$$ ",
        "$q$w$q$",
        "$1 ",
        "$2",
        "1.5 ",
        ".5",
        "1e5 ",
        "10or ",
        "7",
        "-- c\n",
        "/* c ; */",
        ";",
        "; ",
        "\"q 1\" ",
        "t1 ",
        "a$2 ",
        "x.1",
        "'open",
        "$",
        "b'01'",
        "U&'x' ",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..20_000 {
        let mut sql = String::new();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut pick = seed;
        for _ in 0..(2 + seed % 7) {
            sql.push_str(PIECES[(pick % 32) as usize]);
            pick /= 32;
        }
        check_quick(&sql);
    }
}
