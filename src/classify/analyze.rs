//! From text to [`Classification`]: split into statements, decide each (lexer first, sqlparser for
//! queries), add what the lexer saw (side-effecting calls, row locks), then combine.

use super::analysis::{identifier, push_unique, Analysis};
use super::functions::FunctionSet;
use super::keyword::{self, Decision};
use super::lexer::{self, Call, Piece};
use super::{hints, Classification, Intent, StatementKind};
use super::{simple, statement};

/// Classifies a whole text; the flag says whether sqlparser was needed (so the answer is worth caching).
pub(crate) fn classify_text(sql: &str, functions: &FunctionSet) -> (Classification, bool) {
    let split = lexer::split(sql);
    let mut parsed = false;
    let analyses: Vec<Analysis> = split
        .pieces
        .iter()
        .map(|piece| match piece.unterminated {
            true => Analysis::unknown(),
            false => analyze(piece.text, piece, functions, &mut parsed),
        })
        .collect();
    let mut classification = combine(analyses, hints::scan(&split.comments));
    classification.pins = split.pieces.iter().filter_map(|p| super::pins::detect(p.text, &p.calls)).collect();
    classification.unpins = split.pieces.iter().filter_map(|p| super::pins::released(p.text, &p.calls)).collect();
    (classification, parsed)
}

/// Decides one statement, or the statement inside EXPLAIN (`text` is then a suffix of the piece's).
fn analyze(text: &str, piece: &Piece<'_>, functions: &FunctionSet, parsed: &mut bool) -> Analysis {
    let (mut analysis, calls) = match keyword::decide(text) {
        Decision::Done(analysis) => (analysis, Vec::new()),
        Decision::Query(query) => {
            *parsed = true;
            parse(query, piece)
        }
        Decision::CopyQuery { statement, to_client } => {
            return copy(analyze(statement, piece, functions, parsed), to_client);
        }
        Decision::Explain { analyze: executed, inner } => {
            return explain(analyze(inner, piece, functions, parsed), executed);
        }
    };
    let lexed = piece.calls.iter().map(normalize_call);
    for (schema, name) in lexed.chain(calls) {
        if functions.is_write(schema.as_deref(), &name) {
            analysis.make_write();
            push_unique(&mut analysis.functions, name);
        }
    }
    if piece.locks_rows {
        analysis.make_write();
    }
    analysis
}

/// Parses a query; a failure is unknown, unless the lexer saw a row lock sqlparser lacks (FOR NO KEY
/// UPDATE, FOR KEY SHARE), which is a write for sure.
fn parse(query: &str, piece: &Piece<'_>) -> (Analysis, Vec<(Option<String>, String)>) {
    let fits = statement::check_size(query, piece.tokens, piece.operators).is_ok();
    if let Some(analysis) = simple::select(query).filter(|_| fits) {
        return (analysis, Vec::new());
    }
    match statement::analyze(query, piece.tokens, piece.operators) {
        Ok(parsed) => (parsed.analysis, parsed.calls),
        Err(_) if piece.locks_rows => (Analysis::write(StatementKind::Select), Vec::new()),
        Err(_) => (Analysis::unknown(), Vec::new()),
    }
}

/// EXPLAIN runs its statement only with ANALYZE; a statement that EXPLAIN cannot take is unknown.
fn explain(inner: Analysis, executed: bool) -> Analysis {
    let intent = match inner.intent {
        Intent::Unknown => Intent::Unknown,
        Intent::Read | Intent::Write if !executed => Intent::Read,
        Intent::Read | Intent::Write => inner.intent,
        _ => Intent::Unknown,
    };
    let writes = matches!(intent, Intent::Write | Intent::Unknown) || (executed && inner.writes);
    Analysis { intent, writes, kind: StatementKind::Explain, ..inner }
}

/// `COPY (statement) TO …` runs its statement (a query, or DML with RETURNING); writing to a server
/// file or program is a write too.
fn copy(inner: Analysis, to_client: bool) -> Analysis {
    let mut analysis = match inner.intent {
        Intent::Read | Intent::Write => Analysis { kind: StatementKind::Copy, ..inner },
        _ => Analysis { kind: StatementKind::Copy, ..Analysis::unknown() },
    };
    if !to_client {
        analysis.make_write();
    }
    analysis
}

/// A call as `(schema, name)`, each folded as PostgreSQL folds identifiers.
fn normalize_call(call: &Call<'_>) -> (Option<String>, String) {
    (call.schema.map(|t| identifier(&t)), identifier(&call.name))
}

/// Combines the statements of one text; see [`Classification::intent`] for the precedence.
fn combine(analyses: Vec<Analysis>, hints: super::Hints) -> Classification {
    let dominant = [Intent::Unknown, Intent::Write, Intent::Read]
        .iter()
        .find_map(|wanted| analyses.iter().position(|a| a.intent == *wanted))
        .unwrap_or(0);
    let (intent, kind) = match analyses.get(dominant) {
        Some(a) => (a.intent.clone(), a.kind),
        None => (Intent::Read, StatementKind::Other),
    };
    let mut classification = Classification {
        intent,
        writes: analyses.iter().any(|a| a.writes),
        kind,
        tables: Vec::new(),
        functions: Vec::new(),
        hints,
        statements: analyses.len(),
        has_transaction_control: analyses.iter().any(|a| a.intent.is_transaction_control()),
        rolls_back: analyses.iter().any(|a| a.intent == Intent::EndTransaction { rollback: true }),
        session_changes: Vec::new(),
        pins: Vec::new(),
        unpins: Vec::new(),
    };
    for analysis in analyses {
        analysis.tables.into_iter().for_each(|t| push_unique(&mut classification.tables, t));
        analysis.functions.into_iter().for_each(|f| push_unique(&mut classification.functions, f));
        if let Intent::Session(change) = analysis.intent {
            classification.session_changes.push(change);
        }
    }
    classification
}
