//! From text to [`Classification`]: split into statements, decide each (lexer first, sqlparser for
//! queries), add what the lexer saw (side-effecting calls, row locks), then combine.

use smallvec::SmallVec;

use super::analysis::{folded, push_unique, Analysis};
use super::functions::FunctionSet;
use super::keyword::{self, Decision};
use super::lexer::{Call, Piece, Span, Split};
use super::{deallocate, hints, pins, Classification, Intent, StatementKind};
use super::{simple, statement};

/// Classifies a whole text from its split; the flag says whether sqlparser was needed.
pub(crate) fn classify_text(split: &Split<'_>, functions: &FunctionSet) -> (Classification, bool) {
    let mut parsed = false;
    let analyses: SmallVec<[Analysis; 2]> = split
        .pieces
        .iter()
        .map(|piece| match piece.unterminated {
            true => Analysis::unknown(),
            false => analyze(split.span(piece), (piece, split.span(piece)), functions, &mut parsed),
        })
        .collect();
    let mut classification = combine(analyses, hints::scan(&split.comments));
    classification.pins = split.pieces.iter().filter_map(|p| pins::detect(split.span(p))).collect();
    classification.unpins = split.pieces.iter().filter_map(|p| pins::released(split.span(p))).collect();
    classification.deallocates = deallocate::target(split);
    (classification, parsed)
}

/// Decides one statement, or the statement inside EXPLAIN or `COPY (…)` (`span` is then part of
/// the piece's); what the lexer saw (calls, row locks) is the whole piece's.
fn analyze(span: Span<'_>, whole: (&Piece<'_>, Span<'_>), functions: &FunctionSet, parsed: &mut bool) -> Analysis {
    let piece = whole.0;
    let (mut analysis, calls) = match keyword::decide(span) {
        Decision::Done(analysis) => (analysis, Vec::new()),
        Decision::Query(query) => {
            *parsed = true;
            parse(query, piece)
        }
        Decision::CopyQuery { statement, to_client } => {
            return copy(analyze(statement, whole, functions, parsed), to_client);
        }
        Decision::Explain { analyze: executed, inner } => {
            return explain(analyze(inner, whole, functions, parsed), executed);
        }
    };
    for name in whole.1.calls().filter_map(|call| write_call(functions, &call)) {
        analysis.make_write();
        push_unique(&mut analysis.functions, name);
    }
    for (schema, name) in calls {
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

/// The name of a call the lexer saw, if calling it makes the statement a write; names are folded
/// on the stack, as every statement's calls are checked.
fn write_call(functions: &FunctionSet, call: &Call<'_>) -> Option<String> {
    let (mut name_buf, mut schema_buf) = ([0u8; 64], [0u8; 64]);
    let name = folded(call.name, &mut name_buf);
    let schema = call.schema.map(|s| folded(s, &mut schema_buf));
    functions.is_write(schema.as_deref(), &name).then(|| name.into_owned())
}

/// Parses a query; a failure is unknown, unless the lexer saw a row lock sqlparser lacks (FOR NO KEY
/// UPDATE, FOR KEY SHARE), which is a write for sure.
fn parse(query: Span<'_>, piece: &Piece<'_>) -> (Analysis, Vec<(Option<String>, String)>) {
    let text = query.text();
    let fits = statement::check_size(text, piece.tokens, piece.operators).is_ok();
    if let Some(analysis) = simple::select(query.tokens()).filter(|_| fits) {
        return (analysis, Vec::new());
    }
    match statement::analyze(text, piece.tokens, piece.operators) {
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

/// Combines the statements of one text; see [`Classification::intent`] for the precedence.
fn combine(analyses: SmallVec<[Analysis; 2]>, hints: super::Hints) -> Classification {
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
        deallocates: None,
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
