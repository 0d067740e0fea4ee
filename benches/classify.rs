//! What classifying one query text costs: answered from the cache, uncached (the SELECT fast path),
//! parsed by sqlparser (cache off), and decided by the lexer alone. Typical OLTP statements from ORMs, pgbench and psql.
//! `tpcb` sends pgbench's TPC-B transaction with fresh values each time, as `pgbench -M simple`
//! does: the cache key replaces the literals, so these hit.

use std::collections::HashSet;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pgsplit::classify::{Classifier, ClassifierSettings};

/// Plain SELECTs: uncached they take the token fast path; the cache answers repeats.
const QUERIES: &[(&str, &str)] = &[
    ("rails_pk", r#"SELECT "users".* FROM "users" WHERE "users"."id" = $1 LIMIT $2"#),
    ("pgbench_select", "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"),
    (
        "hibernate_join",
        "select u1_0.id,u1_0.name,o1_0.id,o1_0.total from users u1_0 left join orders o1_0 \
         on u1_0.id=o1_0.user_id where u1_0.id=$1 order by o1_0.created desc limit $2",
    ),
    (
        "psql_dt",
        r#"SELECT n.nspname as "Schema", c.relname as "Name", CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' END as "Type", pg_catalog.pg_get_userbyid(c.relowner) as "Owner" FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p','') AND n.nspname <> 'pg_catalog' AND n.nspname !~ '^pg_toast' AND n.nspname <> 'information_schema' AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1,2;"#,
    ),
];

/// Queries outside the SELECT fast path's shape (subquery, CTE, row lock): sqlparser parses them.
const PARSED: &[(&str, &str)] = &[
    (
        "django_subquery",
        r#"SELECT "app_order"."id", "app_order"."total" FROM "app_order" WHERE "app_order"."customer_id" IN (SELECT U0."id" FROM "app_customer" U0 WHERE U0."region" = $1) ORDER BY "app_order"."id" DESC LIMIT 21"#,
    ),
    (
        "cte_report",
        "WITH recent AS (SELECT user_id, sum(total) AS spent FROM orders WHERE created > now() - interval '7 days' \
         GROUP BY user_id) SELECT u.name, r.spent FROM users u JOIN recent r ON r.user_id = u.id ORDER BY r.spent DESC",
    ),
    ("for_update", "SELECT id, balance FROM accounts WHERE id = $1 FOR UPDATE"),
];

/// pgbench's TPC-B transaction (`-M simple`); `{d}`, `{a}`, `{t}`, `{b}` take fresh values.
const TPCB: &[(&str, &str)] = &[
    ("begin", "BEGIN;"),
    ("update_accounts", "UPDATE pgbench_accounts SET abalance = abalance + {d} WHERE aid = {a};"),
    ("select_balance", "SELECT abalance FROM pgbench_accounts WHERE aid = {a};"),
    ("update_tellers", "UPDATE pgbench_tellers SET tbalance = tbalance + {d} WHERE tid = {t};"),
    ("update_branches", "UPDATE pgbench_branches SET bbalance = bbalance + {d} WHERE bid = {b};"),
    (
        "insert_history",
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ({t}, {b}, {a}, {d}, CURRENT_TIMESTAMP);",
    ),
    ("end", "END;"),
];

/// Sets of values per statement: more than the cache holds, as pgbench's random account ids
/// never repeat soon enough for a cache keyed by the whole text.
const VARIANTS: u32 = 4096;

/// TPC-B statements with [`VARIANTS`] different sets of values each, as pgbench's clients send them.
fn tpcb_texts() -> Vec<(&'static str, Vec<String>)> {
    TPCB.iter()
        .map(|(name, template)| {
            let texts = (0..VARIANTS)
                .map(|i| {
                    let (a, d) = (i * 7919 % 200_000 + 1, i as i32 * 37 % 10_000 - 5_000);
                    template
                        .replace("{a}", &a.to_string())
                        .replace("{d}", &d.to_string())
                        .replace("{t}", &(i % 20 + 1).to_string())
                        .replace("{b}", &(i % 2 + 1).to_string())
                })
                .collect();
            (*name, texts)
        })
        .collect()
}

fn tpcb(c: &mut Criterion) {
    let classifier = classifier(1024);
    let statements = tpcb_texts();
    let mut group = c.benchmark_group("tpcb");
    for (name, texts) in &statements {
        let mut next = texts.iter().cycle();
        group.bench_function(*name, |b| {
            b.iter(|| classifier.classify(black_box(next.next().map_or("", String::as_str))))
        });
    }
    group.bench_function("transaction", |b| {
        let mut round = 0;
        b.iter(|| {
            round = (round + 1) % VARIANTS as usize;
            for (_, texts) in &statements {
                black_box(classifier.classify(&texts[round]));
            }
        })
    });
    group.finish();
}

/// Statements the first keyword settles; never parsed. All are cached (DML with its literals
/// replaced in the key) but for session commands holding values, as `set` does.
const LEXED: &[(&str, &str)] = &[
    ("pgbench_update", "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;"),
    ("rails_insert", r#"INSERT INTO "users" ("name", "email", "created_at") VALUES ($1, $2, $3) RETURNING "id""#),
    ("begin", "BEGIN"),
    ("set", "SET application_name = 'web'"),
];

fn classifier(cache_size: usize) -> Classifier {
    Classifier::new(ClassifierSettings { cache_size, write_functions: HashSet::new() })
}

fn cached(c: &mut Criterion) {
    let classifier = classifier(1024);
    for (_, sql) in QUERIES {
        classifier.classify(sql);
    }
    assert_eq!(classifier.stats().entries, QUERIES.len(), "every query must be in the cache");
    let mut group = c.benchmark_group("cached");
    for (name, sql) in QUERIES {
        group.bench_function(*name, |b| b.iter(|| classifier.classify(black_box(sql))));
    }
    group.finish();
}

fn uncached(c: &mut Criterion) {
    let classifier = classifier(0);
    let mut group = c.benchmark_group("uncached");
    for (name, sql) in QUERIES {
        group.bench_function(*name, |b| b.iter(|| classifier.classify(black_box(sql))));
    }
    group.finish();
}

fn parsed(c: &mut Criterion) {
    let classifier = classifier(0);
    let mut group = c.benchmark_group("parsed");
    for (name, sql) in PARSED {
        group.bench_function(*name, |b| b.iter(|| classifier.classify(black_box(sql))));
    }
    group.finish();
}

fn lexed(c: &mut Criterion) {
    let classifier = classifier(1024);
    let mut group = c.benchmark_group("lexed");
    for (name, sql) in LEXED {
        group.bench_function(*name, |b| b.iter(|| classifier.classify(black_box(sql))));
    }
    group.finish();
}

criterion_group!(benches, cached, uncached, parsed, lexed, tpcb);
criterion_main!(benches);
