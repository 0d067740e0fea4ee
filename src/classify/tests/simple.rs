//! The SELECT fast path against the parser: wherever it answers, it must answer as sqlparser does.

use super::table::{Case, CONTROL, FUNCTIONS, ORMS, PGBENCH, PSQL, TRICKY, UTILITY, WRITES};
use crate::classify::analysis::Analysis;
use crate::classify::lexer::{self, Lexer, TokenKind, Tokens};
use crate::classify::{simple, statement};

/// The fast path over every significant token of `sql`, as the lexer cuts them.
fn fast(sql: &str) -> Option<Analysis> {
    let tokens: Vec<_> = Lexer::new(sql).filter(|t| t.kind != TokenKind::Comment).collect();
    simple::select(Tokens::new(&tokens))
}

/// SELECTs beyond the table's: joins, aliases, casts, special forms, things that must bail.
const MORE: &[&str] = &[
    "SELECT left(name, 3), right(name, 2) FROM users u LEFT OUTER JOIN orders AS o USING (user_id)",
    "SELECT count(*) FILTER (WHERE x > 1) OVER (PARTITION BY y) FROM t",
    "SELECT CAST(a AS numeric(10,2)), b::varchar(20), extract(year FROM c), substring(d FROM 1 FOR 2) FROM t",
    "SELECT a IS DISTINCT FROM b FROM s.t x CROSS JOIN \"Other\".\"T2\" NATURAL JOIN t3 WHERE a = ANY($1)",
    "SELECT * FROM t WHERE created > now() - interval '1 day' ORDER BY id DESC LIMIT 10 OFFSET 20",
    "SELECT coalesce(a, b), nullif(c, 0), greatest(d, e), trim(both ' ' from f), position('x' in g) FROM t",
    "SELECT ARRAY[1, 2], ROW(1, 2), exists(SELECT 1) FROM t",
    "SELECT * FROM a JOIN b ON a.id = b.id JOIN c ON (b.id = c.id AND c.x IS NOT NULL), d",
    "SELECT pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c",
    "SELECT * FROM t1, t2 AS x, t3 y WHERE t1.a = x.a GROUP BY 1 HAVING count(*) > 1",
    "SELECT * FROM a.b.c",
    "SELECT * FROM generate_series(1, 10)",
    "SELECT * FROM (SELECT 1) s",
    "SELECT * FROM t FOR UPDATE",
    "SELECT a INTO b FROM t",
    "SELECT 1 UNION SELECT 2",
    "SELECT * FROM t AS x(a, b)",
    "SELECT * FROM t, LATERAL f(t.a)",
    "SELECT * FROM t TABLESAMPLE SYSTEM (10)",
    "SELECT * FROM ONLY t",
    "SELECT * FROM t WHERE a IN (SELECT b FROM u)",
    "SELECT 1 FROM",
    "SELECT (1",
];

/// The analysis the parser gives, as `(tables, functions, writes)`.
fn parsed(sql: &str) -> Option<(Vec<String>, Vec<String>, bool)> {
    let piece = lexer::split(sql).pieces.into_iter().next()?;
    let parsed = statement::analyze(piece.text, piece.tokens, piece.operators).ok()?;
    Some((parsed.analysis.tables, parsed.analysis.functions, parsed.analysis.writes))
}

#[test]
fn fast_path_agrees_with_the_parser() {
    let cases: Vec<Case> = [ORMS, PSQL, PGBENCH, WRITES, FUNCTIONS, UTILITY, CONTROL, TRICKY].concat();
    let texts = cases.iter().map(|c| c.0).chain(MORE.iter().copied());
    let (mut answered, mut wrong) = (0, Vec::new());
    for sql in texts {
        let split = lexer::split(sql);
        let Some(fast) = split.pieces.first().and_then(|p| simple::select(split.span(p).tokens())) else { continue };
        answered += 1;
        let got = (fast.tables.clone(), fast.functions.clone(), fast.writes);
        if parsed(sql).as_ref() != Some(&got) {
            wrong.push(format!("{sql}\n  fast:   {got:?}\n  parser: {:?}", parsed(sql)));
        }
    }
    assert!(wrong.is_empty(), "{} disagreements:\n{}", wrong.len(), wrong.join("\n"));
    assert!(answered >= 40, "the fast path answered only {answered} statements");
}

#[test]
fn fast_path_reads_tables_and_calls() {
    let a = fast(MORE[0]).expect("simple shape");
    assert_eq!(a.tables, ["users", "orders"]);
    assert_eq!(a.functions, ["left", "right"]);
    let a = fast(MORE[3]).expect("simple shape");
    assert_eq!(a.tables, ["s.t", "Other.T2", "t3"]);
}

#[test]
fn fast_path_leaves_other_shapes_to_the_parser() {
    for sql in &MORE[11..] {
        assert_eq!(fast(sql), None, "{sql}");
    }
}
