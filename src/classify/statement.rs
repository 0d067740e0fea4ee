//! The slow path: one query (SELECT, WITH, VALUES, TABLE, or a parenthesised one) parsed by
//! sqlparser's PostgreSQL dialect and walked for routing. Anything it cannot parse is an error,
//! which the caller turns into [`Intent::Unknown`](super::Intent::Unknown).

use sqlparser::ast::{SetExpr, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};

use super::analysis::{push_unique, Analysis};
use super::walk::{QualifiedCall, Walk};
use super::StatementKind;

/// Most operators a query may have to be parsed. sqlparser builds `a OR b OR …` as a left-deep
/// tree without a depth check, and walking or dropping a tree thousands of levels deep would
/// overflow a task's stack; such a query goes to the primary instead.
pub(crate) const MAX_OPERATORS: usize = 1000;

/// Most tokens a query may have to be parsed: sqlparser takes about a microsecond a token, and a
/// parse holds a core. Longer queries (huge IN lists written inline) go to the primary.
pub(crate) const MAX_TOKENS: usize = 20_000;

/// Longest query text given to the parser; also the longest the cache keeps.
pub(crate) const MAX_QUERY_LEN: usize = 1 << 20;

/// Why a query was not understood.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StatementError {
    /// Too long, too many tokens or too many operators to parse safely.
    #[error("query too large to parse ({len} bytes, {tokens} tokens, {operators} operators)")]
    TooLarge { len: usize, tokens: usize, operators: usize },
    /// sqlparser rejected it (it may still be valid PostgreSQL).
    #[error("sqlparser: {0}")]
    Parse(#[from] ParserError),
    /// The text held other than exactly one statement.
    #[error("expected one statement, found {0}")]
    Count(usize),
    /// It parsed as something other than a query.
    #[error("not a query")]
    NotQuery,
}

/// A parsed query's analysis, plus its calls with schemas for matching write functions.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub analysis: Analysis,
    pub calls: Vec<QualifiedCall>,
}

/// Parses and walks one query; `tokens` and `operators` are the lexer's counts for its statement.
pub(crate) fn analyze(sql: &str, tokens: usize, operators: usize) -> Result<Parsed, StatementError> {
    check_size(sql, tokens, operators)?;
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)?;
    if statements.len() != 1 {
        return Err(StatementError::Count(statements.len()));
    }
    let Some(Statement::Query(query)) = statements.pop() else { return Err(StatementError::NotQuery) };
    let mut walk = Walk::default();
    walk.query(&query);
    let kind = match walk.into {
        true => StatementKind::Ddl,
        false => body_kind(&query.body),
    };
    let mut analysis = if walk.writes { Analysis::write(kind) } else { Analysis::read(kind) };
    for table in walk.tables {
        if table.contains('.') || !walk.ctes.contains(&table) {
            push_unique(&mut analysis.tables, table);
        }
    }
    for (_, name) in &walk.calls {
        push_unique(&mut analysis.functions, name.clone());
    }
    Ok(Parsed { analysis, calls: walk.calls })
}

/// Refuses a query too large to analyse safely; the fast path honours the same bounds.
pub(crate) fn check_size(sql: &str, tokens: usize, operators: usize) -> Result<(), StatementError> {
    match operators > MAX_OPERATORS || tokens > MAX_TOKENS || sql.len() > MAX_QUERY_LEN {
        true => Err(StatementError::TooLarge { len: sql.len(), tokens, operators }),
        false => Ok(()),
    }
}

/// The kind of a query by its top-level body: a data-modifying statement under WITH gives its own.
fn body_kind(body: &SetExpr) -> StatementKind {
    match body {
        SetExpr::Insert(_) => StatementKind::Insert,
        SetExpr::Update(_) => StatementKind::Update,
        SetExpr::Delete(_) => StatementKind::Delete,
        SetExpr::Merge(_) => StatementKind::Merge,
        SetExpr::Query(query) => body_kind(&query.body),
        SetExpr::Select(_) | SetExpr::SetOperation { .. } | SetExpr::Values(_) | SetExpr::Table(_) => {
            StatementKind::Select
        }
    }
}
