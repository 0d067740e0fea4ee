//! `DEALLOCATE` sent as SQL, read from the tokens the split cut: the session answers it itself for
//! statements the client prepared with the protocol, which the server knows under pgsplit's names.

use super::analysis::identifier;
use super::lexer::{Split, TokenKind};
use super::Deallocation;

/// What a text that is exactly `DEALLOCATE [PREPARE] name|ALL [;]` drops, else `None`. A comment
/// anywhere in it leaves it to the server, as does anything after the name.
pub(crate) fn target(split: &Split<'_>) -> Option<Deallocation> {
    let [piece] = &split.pieces[..] else { return None };
    if !split.comments.is_empty() || piece.unterminated {
        return None;
    }
    let mut tokens = split.span(piece).tokens();
    if !tokens.next()?.is_word("deallocate") {
        return None;
    }
    let mut target = tokens.next()?;
    if target.is_word("prepare") {
        // `DEALLOCATE PREPARE` alone names a statement called prepare.
        target = tokens.next().unwrap_or(target);
    }
    if tokens.next().is_some() {
        return None;
    }
    match target.kind {
        TokenKind::Word if target.is_word("all") => Some(Deallocation::All),
        TokenKind::Word | TokenKind::QuotedIdent => Some(Deallocation::Name(identifier(&target))),
        _ => None,
    }
}
