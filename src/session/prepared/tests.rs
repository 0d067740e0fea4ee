//! The unnamed statement's classification, kept for the next request that sends its text again.

use std::collections::{BTreeMap, HashSet};

use super::*;
use crate::classify::{Classifier, ClassifierSettings};
use crate::protocol::frame::tests::msg;
use crate::server::BackendKey;
use crate::session::routing::{Inspection, RoutingState};
use crate::stream::Stream;

/// The body of an unnamed Parse of `sql` without parameter types.
fn unnamed_parse(sql: &str) -> Vec<u8> {
    [&b"\0"[..], sql.as_bytes(), b"\0\0\0"].concat()
}

/// A classifier with a cache and `write_functions`.
fn classifier(write_functions: &[&str]) -> Classifier {
    let write_functions: HashSet<String> = write_functions.iter().map(|f| f.to_string()).collect();
    Classifier::new(ClassifierSettings { cache_size: 8, write_functions })
}

/// One client's statements on one server connection, as a session keeps them.
struct Client {
    routing: RoutingState,
    statements: Prepared,
    registry: StatementIds,
    server: ServerConn,
}

impl Client {
    fn new() -> Self {
        let server = ServerConn::new(Stream::Detached, "test".into(), BackendKey::default(), BTreeMap::new());
        Client {
            routing: RoutingState::default(),
            statements: Prepared::default(),
            registry: StatementIds::default(),
            server,
        }
    }

    /// Inspects and rewrites an unnamed Parse of `sql`, Bind, Execute and Sync, as the session
    /// does outside a transaction with unnamed statements reused.
    fn run(&mut self, classifier: &Classifier, sql: &str) -> Inspection {
        let batch =
            [msg(b'P', &unnamed_parse(sql)), msg(b'B', b"\0\0\0\0\0\0\0\0"), msg(b'E', b"\0\0\0\0\0"), msg(b'S', b"")]
                .concat();
        let inspection = self.routing.inspect(classifier, &batch, false, &self.statements);
        self.statements.start_request();
        self.statements.rewrite(&self.registry, &batch, &inspection.parsed, &mut self.server, true, &[]);
        inspection
    }
}

#[test]
fn a_repeated_unnamed_statement_is_answered_from_its_kept_classification() {
    let c = classifier(&[]);
    let mut client = Client::new();
    let first = client.run(&c, "select abalance from accounts where aid = $1");
    let body = unnamed_parse("select abalance from accounts where aid = $1");
    let kept = client.statements.repeated_unnamed(&body, c.generation()).expect("the text repeats");
    assert!(Arc::ptr_eq(kept, &first.parsed.classes[0]));
    assert!(client.statements.repeated_unnamed(&unnamed_parse("select 2"), c.generation()).is_none());
    assert!(client.statements.repeated_unnamed(&[b"s1\0", &body[1..]].concat(), c.generation()).is_none());

    let before = c.stats();
    let again = client.run(&c, "select abalance from accounts where aid = $1");
    assert!(Arc::ptr_eq(&again.statements[0], &first.parsed.classes[0]));
    let after = c.stats();
    assert_eq!((after.hits, after.misses), (before.hits + 1, before.misses), "counted as a hit");
}

#[test]
fn a_kept_classification_is_not_used_once_another_classifier_is() {
    // The monitor learns that f() writes: a new classifier replaces the one that read it as a read.
    let (before, after) = (classifier(&[]), classifier(&["f"]));
    let mut client = Client::new();
    assert!(!client.run(&before, "select f()").writes());
    assert!(client.statements.repeated_unnamed(&unnamed_parse("select f()"), after.generation()).is_none());
    assert!(client.run(&after, "select f()").writes(), "classified again by the classifier in use");
    let kept = client.statements.repeated_unnamed(&unnamed_parse("select f()"), after.generation());
    assert!(kept.expect("kept again, from the new classifier").writes);
    assert!(client.run(&after, "select f()").writes());
}

#[test]
fn without_a_cache_nothing_is_kept() {
    let c = Classifier::new(ClassifierSettings { cache_size: 0, write_functions: HashSet::new() });
    assert_eq!(c.generation(), None);
    let mut client = Client::new();
    client.run(&c, "select 1");
    assert!(client.statements.repeated_unnamed(&unnamed_parse("select 1"), c.generation()).is_none());
}
