//! Targets for the classifier: its lexer and statement splitting, the whole classification (the
//! keyword decision, sqlparser and the walk of its tree), and `pgsplit:` hints in comments.

use std::collections::HashSet;

use proptest::prelude::*;

use super::mutate::{mutated, sql};
use super::run;
use crate::classify::lexer::{self, Lexer, TokenKind};
use crate::classify::{format_lsn, hints, keyword, parse_lsn, Classifier, ClassifierSettings, Intent};

/// Tokens must tile the text in order, each its own slice of it; pieces and comments must be
/// slices of it too.
#[test]
fn classify_lexer() {
    run("classify_lexer", 20_000, sql(), |text| {
        let mut end = 0;
        for token in Lexer::new(&text) {
            assert!(token.start >= end && !token.text.is_empty(), "{token:?} after {end}");
            assert_eq!(&text[token.start..token.end()], token.text);
            end = token.end();
            if token.kind == TokenKind::Punct {
                assert_eq!(token.text.len(), 1);
            }
        }
        let split = lexer::split(&text);
        for piece in &split.pieces {
            assert!(text.contains(piece.text) && !piece.text.is_empty());
        }
        assert!(split.comments.iter().all(|c| text.contains(c)));
        let significant = Lexer::new(&text).filter(|t| t.kind != TokenKind::Comment).count();
        assert!(split.pieces.iter().all(|p| split.tokens[p.range.clone()].len() == p.tokens));
        assert!(split.tokens.len() <= significant, "the split keeps each significant token once");
        for piece in &split.pieces {
            let _ = keyword::decide(split.span(piece));
        }
    });
}

/// The whole classification, cached and not: whatever it cannot understand must be unknown and
/// go to the primary, and the cache must answer as a fresh classification does, also for a text
/// that differs only in its literals from one it keeps.
#[test]
fn classify_walk() {
    let settings = |cache_size| ClassifierSettings {
        cache_size,
        write_functions: HashSet::from(["audit.log_event".to_string(), "bump".to_string()]),
    };
    let (cached, fresh) = (Classifier::new(settings(256)), Classifier::new(settings(0)));
    run("classify_walk", 3_000, sql(), |text| {
        let c = cached.classify(&text);
        if c.intent == Intent::Unknown {
            assert!(c.writes, "unknown text must go to the primary: {text:?}");
        }
        assert_eq!(*c, *fresh.classify(&text));
        assert_eq!(*cached.classify(&text), *c);
        let other = other_literals(&text);
        assert_eq!(*cached.classify(&other), *fresh.classify(&other), "{other:?} after {text:?}");
    });
}

/// `text` with each integer and plain string replaced by another value of its form.
fn other_literals(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut written = 0;
    for token in Lexer::new(text) {
        let other = match token.kind {
            TokenKind::Number if token.text.bytes().all(|b| b.is_ascii_digit()) => "7",
            TokenKind::String if token.text.starts_with('\'') => "'z'",
            _ => continue,
        };
        out.push_str(&text[written..token.start]);
        out.push_str(other);
        written = token.end();
    }
    out.push_str(&text[written..]);
    out
}

/// Hints inside comments, as the lexer hands them over; LSNs in their text form.
#[test]
fn hint_comments() {
    let seeds = [
        "/* pgsplit: route=replica min_lsn=16/B374D848 */",
        "-- pgsplit: route=primary, min_lsn='0/0'",
        "/*PGSPLIT:ROUTE=\"ANY\" min_lsn=FFFFFFFF/FFFFFFFF*/",
    ];
    let seeds = seeds.iter().map(|s| s.as_bytes().to_vec()).collect();
    let input = (proptest::collection::vec(mutated(seeds, 4), 1..4), any::<u64>());
    run("hints", 20_000, input, |(comments, lsn)| {
        let comments: Vec<String> = comments.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        let borrowed: Vec<&str> = comments.iter().map(String::as_str).collect();
        let found = hints::scan(&borrowed);
        let each: Vec<_> = borrowed.iter().map(|c| hints::scan(&[c]).min_lsn).collect();
        assert_eq!(found.min_lsn, each.into_iter().flatten().max(), "the highest LSN wins");
        for comment in &borrowed {
            let _ = parse_lsn(comment);
        }
        assert_eq!(parse_lsn(&format_lsn(lsn)), Some(lsn));
    });
}
