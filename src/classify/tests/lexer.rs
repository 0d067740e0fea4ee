use crate::classify::lexer::{split, Lexer, TokenKind as T};

/// The statements `sql` splits into, as text.
fn pieces(sql: &str) -> Vec<&str> {
    split(sql).pieces.iter().map(|p| p.text).collect()
}

/// Every token of `sql` as (kind, text).
fn tokens(sql: &str) -> Vec<(T, &str)> {
    Lexer::new(sql).map(|t| (t.kind, t.text)).collect()
}

#[test]
fn tokens_keep_quoted_text_whole() {
    let sql = r#"SELECT 'a''b', E'x\'y', "q""i", $$a;b$$, $tag$ $$ ; $tag$, $1, 1.5e3 -- c
        /* a /* b */ c */ x.y"#;
    assert_eq!(
        tokens(sql),
        vec![
            (T::Word, "SELECT"),
            (T::String, "'a''b'"),
            (T::Punct, ","),
            (T::String, r"E'x\'y'"),
            (T::Punct, ","),
            (T::QuotedIdent, r#""q""i""#),
            (T::Punct, ","),
            (T::String, "$$a;b$$"),
            (T::Punct, ","),
            (T::String, "$tag$ $$ ; $tag$"),
            (T::Punct, ","),
            (T::Param, "$1"),
            (T::Punct, ","),
            (T::Number, "1.5e3"),
            (T::Comment, "-- c"),
            (T::Comment, "/* a /* b */ c */"),
            (T::Word, "x"),
            (T::Punct, "."),
            (T::Word, "y"),
        ]
    );
}

#[test]
fn identifiers_may_hold_dollars_and_non_ascii() {
    assert_eq!(tokens("a$b$c été"), vec![(T::Word, "a$b$c"), (T::Word, "été")]);
    assert_eq!(pieces("SELECT été FROM tâble; SELECT 2"), ["SELECT été FROM tâble", "SELECT 2"]);
}

#[test]
fn splits_only_at_real_semicolons() {
    assert_eq!(pieces("SELECT 1; SELECT 2"), ["SELECT 1", "SELECT 2"]);
    assert_eq!(pieces("SELECT ';'; SELECT 2"), ["SELECT ';'", "SELECT 2"]);
    assert_eq!(pieces(r"SELECT E'\';'; SELECT 2"), [r"SELECT E'\';'", "SELECT 2"]);
    assert_eq!(pieces(r"SELECT '\'; SELECT 2"), [r"SELECT '\'", "SELECT 2"]);
    assert_eq!(pieces("SELECT $$;$$; SELECT $a$ $$; $a$"), ["SELECT $$;$$", "SELECT $a$ $$; $a$"]);
    assert_eq!(pieces("SELECT $1; SELECT $2"), ["SELECT $1", "SELECT $2"]);
    assert_eq!(pieces(r#"SELECT "a;b" FROM t; SELECT 2"#), [r#"SELECT "a;b" FROM t"#, "SELECT 2"]);
    assert_eq!(pieces("SELECT 1 -- ; no\n; SELECT 2"), ["SELECT 1", "SELECT 2"]);
    assert_eq!(pieces("SELECT /* ; /* ; */ ; */ 1; SELECT 2"), ["SELECT /* ; /* ; */ ; */ 1", "SELECT 2"]);
    assert_eq!(pieces("SELECT (1; 2)"), ["SELECT (1; 2)"]);
}

#[test]
fn empty_statements_are_dropped() {
    assert!(pieces(";; ; -- nothing\n /* at all */").is_empty());
    assert!(pieces("").is_empty());
    assert_eq!(pieces("  /* lead */ SELECT 1 ; ;"), ["SELECT 1"]);
}

#[test]
fn routine_bodies_keep_their_semicolons() {
    let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; \
               SELECT 2; END; SELECT 3";
    let got = pieces(sql);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].ends_with("SELECT 2; END"));
    assert_eq!(got[1], "SELECT 3");
    // Outside a routine, BEGIN and END are transaction control and split as usual.
    assert_eq!(pieces("BEGIN; SELECT 1; END"), ["BEGIN", "SELECT 1", "END"]);
    assert_eq!(pieces("CREATE OR REPLACE PROCEDURE p() BEGIN ATOMIC COMMIT; END").len(), 1);
}

#[test]
fn unterminated_text_is_flagged() {
    for sql in ["SELECT 'abc; DELETE FROM t", "SELECT 1 /* open", r#"SELECT "x"#, "SELECT $q$ body", "SELECT E'\\"] {
        let lexed = split(sql);
        assert_eq!(lexed.pieces.len(), 1, "{sql}");
        assert!(lexed.pieces[0].unterminated, "{sql}");
    }
    assert!(!split("SELECT 'done'").pieces[0].unterminated);
}

#[test]
fn calls_are_noted_with_their_schema() {
    let lexed = split(r#"SELECT pg_catalog.nextval('s'), "Quoted"(1), f (2), x.y.z(3) FROM t"#);
    let calls: Vec<(Option<&str>, &str)> =
        lexed.span(&lexed.pieces[0]).calls().map(|c| (c.schema.map(|s| s.text), c.name.text)).collect();
    assert_eq!(calls, [(Some("pg_catalog"), "nextval"), (None, r#""Quoted""#), (None, "f"), (Some("y"), "z")]);
    let lexed = split("SELECT 'nextval(1)', nextval FROM t");
    assert!(lexed.span(&lexed.pieces[0]).calls().next().is_none());
}

#[test]
fn row_locks_are_seen_outside_strings() {
    let locks = |sql: &str| split(sql).pieces[0].locks_rows;
    assert!(locks("SELECT 1 FROM t FOR UPDATE"));
    assert!(locks("select 1 from t for no key update of t"));
    assert!(locks("SELECT 1 FROM t FOR SHARE"));
    assert!(locks("SELECT 1 FROM t FOR KEY SHARE SKIP LOCKED"));
    assert!(locks("SELECT 1 FROM t /* x */ FOR /* y */ UPDATE"));
    assert!(!locks("SELECT substring(x FROM 1 FOR 2) FROM t"));
    assert!(!locks("SELECT 'for update' FROM t"));
    assert!(!locks("SELECT 1 FROM t -- for update"));
}

#[test]
fn operators_are_counted() {
    assert_eq!(split("SELECT a + b * c FROM t WHERE x AND NOT y").pieces[0].operators, 4);
    assert_eq!(split("SELECT f(a, b), t.c, d[1] FROM t").pieces[0].operators, 0);
    assert_eq!(split("SELECT x::int").pieces[0].operators, 2);
}

#[test]
fn comments_are_collected_everywhere() {
    let lexed = split("/* a */ SELECT 1 -- b\n; /* c */ SELECT '/* no */'");
    assert_eq!(lexed.comments[..], ["/* a */", "-- b", "/* c */"]);
}
