//! Statements that tie a client to its server connection: what they create lives in the server
//! session (a LISTEN, a SQL-level prepared statement, a session advisory lock, a temporary table,
//! a cursor WITH HOLD, a prepared transaction), so the next transaction must find the same one.

use super::analysis::identifier;
use super::lexer::{Call, Lexer, TokenKind};
use super::Pin;

/// Session advisory locks: held until unlocked or the session ends, unlike the `_xact_` ones.
const SESSION_LOCKS: [&str; 4] =
    ["pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared"];

/// What in one statement ties the session to its connection, if anything.
pub(crate) fn detect(text: &str, calls: &[Call<'_>]) -> Option<Pin> {
    let mut words = Lexer::new(text).filter(|t| t.kind != TokenKind::Comment).map(|t| identifier(&t));
    let first = words.next()?;
    let pin = match first.as_str() {
        "listen" => Some(Pin::Listen),
        "prepare" if words.next().as_deref() == Some("transaction") => Some(Pin::PreparedTransaction),
        "prepare" => Some(Pin::SqlPrepare),
        "declare" => {
            let mut previous = String::new();
            words
                .any(|w| std::mem::replace(&mut previous, w.clone()) == "with" && w == "hold")
                .then_some(Pin::HoldCursor)
        }
        "create" => {
            let mut next = words.next()?;
            if next == "global" || next == "local" {
                next = words.next()?;
            }
            matches!(next.as_str(), "temp" | "temporary").then_some(Pin::TempTable)
        }
        _ => None,
    };
    pin.or_else(|| {
        calls
            .iter()
            .any(|c| SESSION_LOCKS.iter().any(|l| c.name.text.eq_ignore_ascii_case(l)))
            .then_some(Pin::AdvisoryLock)
    })
}

/// Which pin one statement releases entirely, if any: `UNLISTEN *`, `pg_advisory_unlock_all()`,
/// `DEALLOCATE ALL`, `DISCARD TEMP`, `CLOSE ALL`, `COMMIT PREPARED`, `ROLLBACK PREPARED`. Releasing
/// one channel or one lock keeps the pin: pgsplit cannot tell whether it was the last.
pub(crate) fn released(text: &str, calls: &[Call<'_>]) -> Option<Pin> {
    let mut tokens = Lexer::new(text).filter(|t| t.kind != TokenKind::Comment);
    let first = tokens.next().map(|t| identifier(&t));
    let second = tokens.next();
    let second_word = second.map(|t| identifier(&t));
    let third_word = tokens.next().map(|t| identifier(&t));
    let released = match (first.as_deref(), second_word.as_deref()) {
        (Some("unlisten"), _) if second.is_some_and(|t| t.is_punct(b'*')) => Some(Pin::Listen),
        (Some("deallocate"), Some("all")) => Some(Pin::SqlPrepare),
        (Some("deallocate"), Some("prepare")) if third_word.as_deref() == Some("all") => Some(Pin::SqlPrepare),
        (Some("discard"), Some("temp" | "temporary")) => Some(Pin::TempTable),
        (Some("close"), Some("all")) => Some(Pin::HoldCursor),
        (Some("commit" | "rollback"), Some("prepared")) => Some(Pin::PreparedTransaction),
        _ => None,
    };
    released.or_else(|| {
        calls.iter().any(|c| c.name.text.eq_ignore_ascii_case("pg_advisory_unlock_all")).then_some(Pin::AdvisoryLock)
    })
}

#[cfg(test)]
mod tests {
    use crate::classify::{Classifier, Pin};

    #[test]
    fn session_bound_statements() {
        let c = Classifier::new(Default::default());
        let pins = |sql: &str| c.classify(sql).pins.clone();
        assert_eq!(pins("LISTEN jobs"), vec![Pin::Listen]);
        assert_eq!(pins("prepare q(int) as select $1"), vec![Pin::SqlPrepare]);
        assert_eq!(pins("PREPARE TRANSACTION 'g1'"), vec![Pin::PreparedTransaction]);
        assert_eq!(pins("select pg_advisory_lock(7)"), vec![Pin::AdvisoryLock]);
        assert_eq!(pins("select pg_advisory_xact_lock(7)"), vec![]);
        assert_eq!(pins("create temp table t (x int)"), vec![Pin::TempTable]);
        assert_eq!(pins("CREATE GLOBAL TEMPORARY TABLE t (x int)"), vec![Pin::TempTable]);
        assert_eq!(pins("create table t (x int)"), vec![]);
        assert_eq!(pins("declare c cursor with hold for select 1"), vec![Pin::HoldCursor]);
        assert_eq!(pins("declare c cursor for select 1"), vec![]);
        assert_eq!(pins("select 'listen'; /* prepare */ select 1"), vec![]);
        assert_eq!(pins("begin; listen a; commit"), vec![Pin::Listen]);
    }

    #[test]
    fn statements_that_release_a_pin() {
        let c = Classifier::new(Default::default());
        let unpins = |sql: &str| c.classify(sql).unpins.clone();
        assert_eq!(unpins("UNLISTEN *"), vec![Pin::Listen]);
        assert_eq!(unpins("unlisten jobs"), vec![]);
        assert_eq!(unpins("select pg_advisory_unlock_all()"), vec![Pin::AdvisoryLock]);
        assert_eq!(unpins("select pg_advisory_unlock(7)"), vec![]);
        assert_eq!(unpins("DEALLOCATE ALL"), vec![Pin::SqlPrepare]);
        assert_eq!(unpins("deallocate prepare all"), vec![Pin::SqlPrepare]);
        assert_eq!(unpins("deallocate q"), vec![]);
        assert_eq!(unpins("DISCARD TEMP"), vec![Pin::TempTable]);
        assert_eq!(unpins("close all"), vec![Pin::HoldCursor]);
        assert_eq!(unpins("COMMIT PREPARED 'g1'"), vec![Pin::PreparedTransaction]);
        assert_eq!(unpins("commit"), vec![]);
        assert_eq!(unpins("unlisten *; select 1"), vec![Pin::Listen]);
    }
}
