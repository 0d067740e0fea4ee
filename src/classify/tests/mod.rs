//! Unit tests of the classifier: the lexer, hints, session commands, the cache, and a table of real
//! statements with what they must mean for routing.

mod classifier;
mod hints;
mod key;
mod lexer;
mod session;
mod simple;
mod table;

use super::*;

/// A classifier with a small cache and no extra write functions.
fn classifier() -> Classifier {
    Classifier::new(ClassifierSettings { cache_size: 64, write_functions: HashSet::new() })
}

/// Classifies one text with a fresh classifier.
fn classify(sql: &str) -> Arc<Classification> {
    classifier().classify(sql)
}
