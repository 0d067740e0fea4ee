//! The fast path: a statement's first keyword settles most statements without a parser. Queries
//! (SELECT, WITH, VALUES, TABLE, a parenthesis) go to sqlparser; COPY (…) TO and EXPLAIN hand on
//! the statement they run.

use super::analysis::{push_unique, qualified_name, Analysis};
use super::lexer::{Span, TokenKind, Tokens};
use super::{session, StatementKind as Kind};

/// What the first keyword says about a statement.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision<'a> {
    /// Settled by the lexer alone.
    Done(Analysis),
    /// A query for sqlparser.
    Query(Span<'a>),
    /// `COPY (statement) TO …`: the statement it runs; `to_client` for STDOUT, else a server file or
    /// program, which is a write.
    CopyQuery { statement: Span<'a>, to_client: bool },
    /// `EXPLAIN … statement`: the explained statement, which runs only with ANALYZE.
    Explain { analyze: bool, inner: Span<'a> },
}

/// Decides a statement by its leading keywords, from the tokens the split already cut.
pub(crate) fn decide(span: Span<'_>) -> Decision<'_> {
    let mut lexer = span.tokens();
    let Some(first) = lexer.next_significant() else { return Decision::Done(Analysis::read(Kind::Other)) };
    if first.is_punct(b'(') {
        return Decision::Query(span);
    }
    let mut buf = [0u8; 12];
    let Some(verb) = lowercase(first, &mut buf) else { return Decision::Done(Analysis::unknown()) };
    let done = match verb {
        "select" | "with" | "values" => return Decision::Query(span),
        "table" => match table_only(lexer) {
            Some(analysis) => analysis,
            None => return Decision::Query(span),
        },
        "explain" => return explain(lexer, span),
        "copy" => return copy(lexer, span),
        "insert" => targets(Kind::Insert, lexer, &["into"], false),
        "update" => targets(Kind::Update, lexer, &[], false),
        "delete" => targets(Kind::Delete, lexer, &["from"], false),
        "merge" => targets(Kind::Merge, lexer, &["into"], false),
        "truncate" => targets(Kind::Ddl, lexer, &["table"], true),
        "lock" => targets(Kind::Utility, lexer, &["table"], true),
        "create" | "alter" | "drop" | "comment" | "grant" | "revoke" | "reindex" | "cluster" | "refresh"
        | "security" | "import" | "reassign" => Analysis::write(Kind::Ddl),
        "call" => Analysis::write(Kind::Call),
        "do" => Analysis::write(Kind::Do),
        "show" => Analysis::read(Kind::Show),
        "set" => session::set(lexer),
        "reset" => session::reset(lexer),
        "discard" => session::discard(lexer),
        "begin" | "start" | "commit" | "end" | "rollback" | "abort" | "savepoint" | "release" => {
            session::transaction(verb, lexer)
        }
        "prepare" if lexer.peek().is_some_and(|t| t.is_word("transaction")) => session::transaction(verb, lexer),
        // PREPARE/EXECUTE of SQL-level statements hide what runs; cursors, LOAD and the rest change
        // session or server state. All of them stay on the primary.
        "vacuum" | "analyze" | "analyse" | "checkpoint" | "listen" | "unlisten" | "notify" | "prepare" | "execute"
        | "deallocate" | "declare" | "fetch" | "move" | "close" | "load" => Analysis::write(Kind::Utility),
        _ => Analysis::unknown(),
    };
    Decision::Done(done)
}

/// A word of at most `buf`'s length in lowercase, without allocating; `None` for any other token.
fn lowercase<'b>(token: super::lexer::Token<'_>, buf: &'b mut [u8]) -> Option<&'b str> {
    let lower = buf.get_mut(..token.text.len()).filter(|_| token.kind == TokenKind::Word)?;
    lower.copy_from_slice(token.text.as_bytes());
    lower.make_ascii_lowercase();
    // Lowercasing ASCII bytes keeps UTF-8 valid.
    std::str::from_utf8(lower).ok()
}

/// A write whose target tables follow the verb, after optional `skip` words and ONLY; `many` reads
/// a comma-separated list (TRUNCATE, LOCK).
fn targets(kind: Kind, mut lexer: Tokens<'_>, skip: &[&str], many: bool) -> Analysis {
    let mut analysis = Analysis::write(kind);
    let mut next = lexer.next_significant();
    while next.is_some_and(|t| skip.iter().chain(&["only"]).any(|w| t.is_word(w))) {
        next = lexer.next_significant();
    }
    while let Some(name) = next.and_then(|t| qualified_name(t, &mut lexer)) {
        push_unique(&mut analysis.tables, name);
        next = lexer.next_significant();
        while next.is_some_and(|t| t.is_punct(b'*')) {
            next = lexer.next_significant();
        }
        if !many || !next.is_some_and(|t| t.is_punct(b',')) {
            break;
        }
        next = lexer.next_significant();
        if next.is_some_and(|t| t.is_word("only")) {
            next = lexer.next_significant();
        }
    }
    analysis
}

/// `TABLE [ONLY] name [*]` and nothing more, which sqlparser does not take: a read of that table.
fn table_only(mut lexer: Tokens<'_>) -> Option<Analysis> {
    let mut next = lexer.next_significant().filter(|t| !t.is_word("only")).or_else(|| lexer.next_significant());
    let table = qualified_name(next?, &mut lexer)?;
    next = lexer.next_significant();
    if next.is_some_and(|t| t.is_punct(b'*')) {
        next = lexer.next_significant();
    }
    if next.is_some() {
        return None;
    }
    let mut analysis = Analysis::read(Kind::Select);
    analysis.tables.push(table);
    Some(analysis)
}

/// `EXPLAIN [ANALYZE] [VERBOSE] stmt` or `EXPLAIN (option [value], …) stmt`.
fn explain<'a>(mut lexer: Tokens<'a>, span: Span<'a>) -> Decision<'a> {
    let mut analyze = false;
    while let Some(token) = lexer.peek() {
        if token.is_word("analyze") || token.is_word("analyse") {
            analyze = true;
        } else if token.is_punct(b'(') {
            lexer.next_significant();
            analyze |= explain_options(&mut lexer);
            continue;
        } else if !token.is_word("verbose") {
            return Decision::Explain { analyze, inner: Span { sql: span.sql, tokens: lexer.rest() } };
        }
        lexer.next_significant();
    }
    Decision::Done(Analysis::unknown())
}

/// Reads EXPLAIN's parenthesised options up to `)`; whether ANALYZE is on. Anything but an explicit
/// false, off or 0 after ANALYZE counts as on.
fn explain_options(lexer: &mut Tokens<'_>) -> bool {
    let mut analyze = false;
    let mut option_start = true;
    let mut in_analyze = false;
    while let Some(token) = lexer.next_significant() {
        if token.is_punct(b')') {
            break;
        }
        if token.is_punct(b',') {
            option_start = true;
            in_analyze = false;
            continue;
        }
        if option_start {
            in_analyze = token.is_word("analyze") || token.is_word("analyse");
            analyze |= in_analyze;
        } else if in_analyze {
            let value = token.text.trim_matches('\'');
            analyze = !["false", "off", "0", "no"].iter().any(|v| value.eq_ignore_ascii_case(v));
        }
        option_start = false;
    }
    analyze
}

/// `COPY table [(cols)] FROM|TO …` or `COPY (query) TO …`; only TO STDOUT is a read.
fn copy<'a>(mut lexer: Tokens<'a>, span: Span<'a>) -> Decision<'a> {
    let Some(first) = lexer.next_significant() else { return Decision::Done(Analysis::unknown()) };
    if first.is_punct(b'(') {
        let inner = lexer.rest();
        let Some(close) = matching_paren(&mut lexer) else { return Decision::Done(Analysis::unknown()) };
        let statement = Span { sql: span.sql, tokens: &inner[..close] };
        return match direction(&mut lexer) {
            Some((true, to_client)) => Decision::CopyQuery { statement, to_client },
            _ => Decision::Done(Analysis::unknown()),
        };
    }
    let Some(table) = qualified_name(first, &mut lexer) else { return Decision::Done(Analysis::unknown()) };
    if lexer.peek().is_some_and(|t| t.is_punct(b'(')) {
        lexer.next_significant();
        if matching_paren(&mut lexer).is_none() {
            return Decision::Done(Analysis::unknown());
        }
    }
    let mut analysis = match direction(&mut lexer) {
        Some((true, true)) => Analysis::read(Kind::Copy),
        Some(_) => Analysis::write(Kind::Copy),
        None => Analysis::unknown(),
    };
    analysis.tables.push(table);
    Decision::Done(analysis)
}

/// Consumes tokens up to the `)` closing an already consumed `(`; how many tokens came before it.
fn matching_paren(lexer: &mut Tokens<'_>) -> Option<usize> {
    let mut depth = 1usize;
    for (inside, token) in lexer.enumerate() {
        if token.is_punct(b'(') {
            depth += 1;
        } else if token.is_punct(b')') {
            depth -= 1;
            if depth == 0 {
                return Some(inside);
            }
        }
    }
    None
}

/// COPY's direction and end point: `(is TO, to the client)`; `None` if neither FROM nor TO follows.
fn direction(lexer: &mut Tokens<'_>) -> Option<(bool, bool)> {
    let token = lexer.next_significant()?;
    let to = token.is_word("to");
    if !to && !token.is_word("from") {
        return None;
    }
    let to_client = lexer.next_significant().is_some_and(|t| t.is_word("stdout") || t.is_word("stdin"));
    Some((to, to && to_client))
}
