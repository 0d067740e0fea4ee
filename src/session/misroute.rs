//! The safety nets for requests refused before they ran. A read sent to a replica outside a
//! transaction that the replica refuses as a write (SQLSTATE 25006) has run nothing; if none of
//! its replies reached the client yet, it is run again on the primary and the client sees
//! success. The same holds for a statement pgsplit reused from an earlier Parse that PostgreSQL
//! refuses because DDL changed its result type (0A000, "cached plan must not change result
//! type"): it is prepared again and the request rerun.

use crate::protocol::frame::messages;
use crate::protocol::{from_server, sqlstate};

/// What the replies so far say about a request sent to a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Only preliminaries (ParseComplete, BindComplete, descriptions): keep holding them back.
    Undecided,
    /// Results or another error: the request ran on the replica; forward everything.
    Ran,
    /// The replica refused it as a write before anything ran.
    Misrouted,
    /// A reused statement's plan no longer fits its result type; nothing ran.
    StalePlan,
}

/// Judges a run of replies.
pub fn judge(replies: &[u8]) -> Verdict {
    for (tag, body) in messages(replies) {
        match tag {
            from_server::ERROR_RESPONSE => {
                let code = from_server::error_field(body, b'C');
                return if code == Some(sqlstate::READ_ONLY_SQL_TRANSACTION.as_bytes()) {
                    Verdict::Misrouted
                } else if code == Some(sqlstate::FEATURE_NOT_SUPPORTED.as_bytes()) && is_stale_plan(body) {
                    Verdict::StalePlan
                } else {
                    Verdict::Ran
                };
            }
            b'D' | b'C' | b'I' | b's' | b'G' | b'H' | b'W' | b'V' | b'A' => return Verdict::Ran,
            _ => {}
        }
    }
    Verdict::Undecided
}

/// Whether an ErrorResponse is the plan cache's refusal of a changed result type: by the routine
/// that raises it (its message may be translated), or by the English message.
fn is_stale_plan(body: &[u8]) -> bool {
    from_server::error_field(body, b'R') == Some(b"RevalidateCachedQuery")
        || from_server::error_field(body, b'M') == Some(b"cached plan must not change result type")
}

/// The first SQL text of a request (Query or Parse), for the log.
pub fn first_sql(request: &[u8]) -> Option<String> {
    messages(request).find_map(|(tag, body)| {
        let text = match tag {
            b'Q' => crate::protocol::from_client::query_text(body)?,
            b'P' => crate::protocol::from_client::parse_message(body)?.1,
            _ => return None,
        };
        Some(String::from_utf8_lossy(text).into_owned())
    })
}

/// A short, stable description of a statement for the log: its first words, literals left out.
pub fn fingerprint(sql: &str) -> String {
    sql.split_whitespace()
        .take(6)
        .map(|w| if w.starts_with('\'') || w.chars().next().is_some_and(|c| c.is_ascii_digit()) { "?" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::tests::msg;

    #[test]
    fn verdicts() {
        let prelim = [msg(b'1', b""), msg(b'2', b""), msg(b'T', b"\0\0")].concat();
        assert_eq!(judge(&prelim), Verdict::Undecided);
        let refused = [prelim.clone(), msg(b'E', b"SERROR\0C25006\0Mcannot execute\0\0")].concat();
        assert_eq!(judge(&refused), Verdict::Misrouted);
        let other = [prelim.clone(), msg(b'E', b"SERROR\0C42P01\0Mno table\0\0")].concat();
        assert_eq!(judge(&other), Verdict::Ran);
        let rows = [prelim.clone(), msg(b'D', b"\0\0"), msg(b'E', b"C25006\0\0")].concat();
        assert_eq!(judge(&rows), Verdict::Ran, "rows reached the client side first");
        let stale = msg(b'E', b"SERROR\0C0A000\0Mcached plan must not change result type\0\0");
        assert_eq!(judge(&[prelim.clone(), stale].concat()), Verdict::StalePlan);
        let translated = msg(b'E', b"SERROR\0C0A000\0Mle plan\0RRevalidateCachedQuery\0\0");
        assert_eq!(judge(&translated), Verdict::StalePlan, "known by its routine");
        let unsupported = msg(b'E', b"SERROR\0C0A000\0Mnot supported\0\0");
        assert_eq!(judge(&unsupported), Verdict::Ran);
    }

    #[test]
    fn fingerprints_drop_literals() {
        assert_eq!(fingerprint("select  my_writer('x', 42)"), "select my_writer('x', ?");
        assert_eq!(fingerprint("update t set a = 'secret' where id = 7"), "update t set a = ?");
    }
}
