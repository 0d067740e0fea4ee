use super::classify;
use crate::classify::{Deallocation, DiscardKind, Intent, SessionChange, StatementKind};

fn set(name: &str, value: &str, local: bool) -> Intent {
    Intent::Session(SessionChange::Set { name: name.into(), value: value.into(), local })
}

fn reset(name: &str) -> Intent {
    Intent::Session(SessionChange::Reset { name: name.into() })
}

/// Each text must come out as exactly this intent, needing no primary, with one session change.
fn check_session(cases: &[(&str, Intent)]) {
    for (sql, want) in cases {
        let c = classify(sql);
        assert_eq!(&c.intent, want, "{sql}");
        assert!(!c.writes, "{sql}");
        assert_eq!(c.kind, StatementKind::Set, "{sql}");
        let Intent::Session(change) = want else { unreachable!("cases are session changes") };
        assert_eq!(c.session_changes, std::slice::from_ref(change), "{sql}");
    }
}

#[test]
fn set_values_come_out_unquoted() {
    check_session(&[
        ("SET pgsplit.route = 'primary'", set("pgsplit.route", "primary", false)),
        ("SET pgsplit.min_lsn = '0/1'", set("pgsplit.min_lsn", "0/1", false)),
        ("set PGSPLIT.ROUTE to replica", set("pgsplit.route", "replica", false)),
        ("SET SESSION statement_timeout TO 5000", set("statement_timeout", "5000", false)),
        ("SET LOCAL lock_timeout = '1s'", set("lock_timeout", "1s", true)),
        ("SET extra_float_digits = -1", set("extra_float_digits", "-1", false)),
        ("SET application_name = 'it''s'", set("application_name", "it's", false)),
        (r"SET application_name = E'it\'s\tok'", set("application_name", "it's\tok", false)),
        ("SET application_name = $$dollar$$", set("application_name", "dollar", false)),
        (r#"SET "MyVar".x = 1"#, set("MyVar.x", "1", false)),
        ("SET datestyle TO iso, dmy", set("datestyle", "iso, dmy", false)),
        (r#"SET search_path TO "$user", public"#, set("search_path", r#""$user", public"#, false)),
        ("SET search_path = 'My Schema', app", set("search_path", r#""My Schema", app"#, false)),
        ("SET standard_conforming_strings = on", set("standard_conforming_strings", "on", false)),
    ]);
}

#[test]
fn set_special_forms_map_to_settings() {
    check_session(&[
        ("SET TIME ZONE 'Europe/Paris'", set("timezone", "Europe/Paris", false)),
        ("SET TIME ZONE -5", set("timezone", "-5", false)),
        ("SET TIME ZONE LOCAL", reset("timezone")),
        ("SET NAMES 'UTF8'", set("client_encoding", "UTF8", false)),
        ("SET SCHEMA 'app'", set("search_path", "app", false)),
        ("SET ROLE admin", set("role", "admin", false)),
        ("SET role TO 'admin'", set("role", "admin", false)),
        ("SET ROLE NONE", set("role", "none", false)),
        ("SET SESSION AUTHORIZATION 'bob'", set("session_authorization", "bob", false)),
        ("SET SESSION AUTHORIZATION DEFAULT", reset("session_authorization")),
        ("SET XML OPTION DOCUMENT", set("xmloption", "document", false)),
        ("SET work_mem TO DEFAULT", reset("work_mem")),
        ("SET LOCAL work_mem TO DEFAULT", set("work_mem", "default", true)),
        ("SET CONSTRAINTS ALL DEFERRED", set("constraints", "all deferred", true)),
        ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", set("session_characteristics", "read only", false)),
        ("SET TRANSACTION READ ONLY", set("transaction", "read only", true)),
        (
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            set("transaction", "isolation level repeatable read", true),
        ),
    ]);
}

#[test]
fn set_transaction_that_a_standby_refuses_needs_the_primary() {
    for sql in ["SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "SET TRANSACTION READ WRITE"] {
        let c = classify(sql);
        assert!(matches!(c.intent, Intent::Session(SessionChange::Set { .. })), "{sql}");
        assert!(c.writes, "{sql}");
    }
}

#[test]
fn reset_and_discard() {
    check_session(&[
        ("RESET statement_timeout", reset("statement_timeout")),
        ("RESET pgsplit.route", reset("pgsplit.route")),
        ("RESET TIME ZONE", reset("timezone")),
        ("RESET ROLE", reset("role")),
        ("RESET SESSION AUTHORIZATION", reset("session_authorization")),
        ("RESET TRANSACTION ISOLATION LEVEL", reset("transaction_isolation")),
        ("RESET ALL", Intent::Session(SessionChange::ResetAll)),
        ("DISCARD ALL", Intent::Session(SessionChange::Discard(DiscardKind::All))),
        ("discard plans", Intent::Session(SessionChange::Discard(DiscardKind::Plans))),
        ("DISCARD SEQUENCES", Intent::Session(SessionChange::Discard(DiscardKind::Sequences))),
        ("DISCARD TEMP", Intent::Session(SessionChange::Discard(DiscardKind::Temp))),
        ("DISCARD TEMPORARY", Intent::Session(SessionChange::Discard(DiscardKind::Temp))),
    ]);
}

#[test]
fn malformed_session_commands_are_unknown() {
    for sql in [
        "SET",
        "SET x",
        "SET x FROM CURRENT",
        "SET x =",
        "SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE",
        "RESET",
        "RESET ALL x",
        "DISCARD",
        "DISCARD EVERYTHING",
        "START",
    ] {
        let c = classify(sql);
        assert_eq!(c.intent, Intent::Unknown, "{sql}");
        assert!(c.writes, "{sql}");
        assert!(c.session_changes.is_empty(), "{sql}");
    }
}

#[test]
fn begin_modes() {
    let cases: &[(&str, Option<bool>, bool)] = &[
        ("BEGIN", None, true),
        ("BEGIN WORK", None, true),
        ("BEGIN READ ONLY", Some(true), false),
        ("begin transaction read write", Some(false), true),
        ("BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY", Some(true), false),
        ("START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", Some(true), false),
        ("START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE", Some(true), true),
        ("START TRANSACTION ISOLATION LEVEL REPEATABLE READ", None, true),
        ("BEGIN READ ONLY, READ WRITE", Some(false), true),
    ];
    for (sql, read_only, writes) in cases {
        let c = classify(sql);
        assert_eq!(c.intent, Intent::Begin { read_only: *read_only }, "{sql}");
        assert_eq!(c.writes, *writes, "{sql}");
        assert!(c.has_transaction_control, "{sql}");
        assert_eq!(c.kind, StatementKind::Transaction, "{sql}");
    }
}

#[test]
fn ends_savepoints_and_two_phase_commit() {
    let cases: &[(&str, Intent, bool)] = &[
        ("COMMIT", Intent::EndTransaction { rollback: false }, false),
        ("COMMIT AND CHAIN", Intent::EndTransaction { rollback: false }, false),
        ("END TRANSACTION", Intent::EndTransaction { rollback: false }, false),
        ("ABORT", Intent::EndTransaction { rollback: true }, false),
        ("ROLLBACK AND NO CHAIN", Intent::EndTransaction { rollback: true }, false),
        ("ROLLBACK WORK", Intent::EndTransaction { rollback: true }, false),
        ("ROLLBACK TO s1", Intent::Savepoint, false),
        ("ROLLBACK TRANSACTION TO SAVEPOINT s1", Intent::Savepoint, false),
        ("RELEASE s1", Intent::Savepoint, false),
        ("PREPARE TRANSACTION 'gid-1'", Intent::EndTransaction { rollback: false }, true),
        ("COMMIT PREPARED 'gid-1'", Intent::EndTransaction { rollback: false }, true),
        ("ROLLBACK PREPARED 'gid-1'", Intent::EndTransaction { rollback: false }, true),
    ];
    for (sql, intent, writes) in cases {
        let c = classify(sql);
        assert_eq!(&c.intent, intent, "{sql}");
        assert_eq!(c.writes, *writes, "{sql}");
        assert!(c.has_transaction_control, "{sql}");
    }
}

#[test]
fn deallocate_forms() {
    let target = |sql: &str| classify(sql).deallocates.clone();
    let name = |n: &str| Some(Deallocation::Name(n.into()));
    assert_eq!(target("DEALLOCATE s1"), name("s1"));
    assert_eq!(target("deallocate prepare \"S 1\";"), name("S 1"));
    assert_eq!(target("DEALLOCATE ALL"), Some(Deallocation::All));
    assert_eq!(target("deallocate prepare all"), Some(Deallocation::All));
    assert_eq!(target("deallocate Foo"), name("foo"));
    assert_eq!(target("DEALLOCATE \"a\"\"b\""), name("a\"b"));
    assert_eq!(target("DEALLOCATE prepare"), name("prepare"));
    assert_eq!(target("DEALLOCATE s1; select 1"), None);
    assert_eq!(target("select 1"), None);
    assert_eq!(target("deallocate /* x */ s1"), None);
    assert_eq!(target("deallocate s1 extra"), None);
    assert_eq!(target("deallocate 's1'"), None);
}
