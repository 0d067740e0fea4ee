//! Statements that tie a client to its server connection: what they create lives in the server
//! session (a LISTEN, a SQL-level prepared statement, a session advisory lock, a temporary table,
//! a cursor WITH HOLD, a prepared transaction), so the next transaction must find the same one.

use super::lexer::{Span, Token};
use super::Pin;

/// Session advisory locks: held until unlocked or the session ends, unlike the `_xact_` ones.
const SESSION_LOCKS: [&str; 4] =
    ["pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared"];

/// What in one statement (its tokens, as the split cut them) ties the session to its connection.
pub(crate) fn detect(statement: Span<'_>) -> Option<Pin> {
    let mut tokens = statement.tokens();
    let first = tokens.next()?;
    let word = |t: Option<Token<'_>>, w: &str| t.is_some_and(|t| t.is_word(w));
    let pin = if first.is_word("listen") {
        Some(Pin::Listen)
    } else if first.is_word("prepare") {
        match word(tokens.next(), "transaction") {
            true => Some(Pin::PreparedTransaction),
            false => Some(Pin::SqlPrepare),
        }
    } else if first.is_word("declare") {
        let mut previous = None;
        tokens.any(|t| word(previous.replace(t), "with") && t.is_word("hold")).then_some(Pin::HoldCursor)
    } else if first.is_word("create") {
        let mut next = tokens.next();
        if word(next, "global") || word(next, "local") {
            next = tokens.next();
        }
        (word(next, "temp") || word(next, "temporary")).then_some(Pin::TempTable)
    } else {
        None
    };
    pin.or_else(|| {
        statement
            .calls()
            .any(|c| SESSION_LOCKS.iter().any(|l| c.name.text.eq_ignore_ascii_case(l)))
            .then_some(Pin::AdvisoryLock)
    })
}

/// Which pin one statement releases entirely, if any: `UNLISTEN *`, `pg_advisory_unlock_all()`,
/// `DEALLOCATE ALL`, `DISCARD TEMP`, `CLOSE ALL`, `COMMIT PREPARED`, `ROLLBACK PREPARED`. Releasing
/// one channel or one lock keeps the pin: pgsplit cannot tell whether it was the last.
pub(crate) fn released(statement: Span<'_>) -> Option<Pin> {
    let mut tokens = statement.tokens();
    let [first, second, third] = [tokens.next(), tokens.next(), tokens.next()];
    let word = |t: Option<Token<'_>>, w: &str| t.is_some_and(|t| t.is_word(w));
    let released = if word(first, "unlisten") && second.is_some_and(|t| t.is_punct(b'*')) {
        Some(Pin::Listen)
    } else if word(first, "deallocate") && (word(second, "all") || (word(second, "prepare") && word(third, "all"))) {
        Some(Pin::SqlPrepare)
    } else if word(first, "discard") && (word(second, "temp") || word(second, "temporary")) {
        Some(Pin::TempTable)
    } else if word(first, "close") && word(second, "all") {
        Some(Pin::HoldCursor)
    } else if (word(first, "commit") || word(first, "rollback")) && word(second, "prepared") {
        Some(Pin::PreparedTransaction)
    } else {
        None
    };
    released.or_else(|| {
        statement
            .calls()
            .any(|c| c.name.text.eq_ignore_ascii_case("pg_advisory_unlock_all"))
            .then_some(Pin::AdvisoryLock)
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
