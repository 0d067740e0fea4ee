//! The cache key of a text: the text with the literals of queries and DML replaced by markers, so
//! statements that differ only in their numbers and strings (pgbench, ORMs that inline values)
//! share one entry.
//!
//! Only statements whose meaning for routing cannot depend on a literal's value are normalised:
//! SELECT, WITH, VALUES, TABLE, a parenthesised query, INSERT, UPDATE, DELETE and MERGE. What they
//! are classified by is names (keywords, tables, functions) and shape, never a value. Every other
//! statement keeps its literals, because there values count: SET carries them into the session
//! (`SET pgsplit.route = 'replica'`, `SET pgsplit.min_lsn = '0/3000060'`), BEGIN and SET
//! TRANSACTION read modes, EXPLAIN's options say whether ANALYZE runs (`EXPLAIN (ANALYZE 0)`).
//! Comments stay as written: hints live in them. Rules that match the text with a regex never see
//! the key; they match the text the client sent.
//!
//! A marker is a NUL byte and a letter for the literal's form (integer, decimal, plain, escape or
//! dollar-quoted string). A NUL never occurs in a protocol text, where it ends the text, and a
//! text holding one is not cached, so a key with markers can only come from texts that differ from
//! each other in literals alone. Texts longer than the parser takes are not cached either: their
//! classification depends on their length.

use super::lexer::{skip, token_at, Split, Token, TokenKind, SPACE};
use super::statement::MAX_QUERY_LEN;

/// Leading words of the statements whose literals are replaced.
const NORMALISED: [&str; 8] = ["select", "with", "values", "table", "insert", "update", "delete", "merge"];

/// Whether a text may be answered from the cache and kept there: not past the parser's limit (a
/// longer text is unknown whatever its key), and free of NUL bytes (which only markers hold).
pub(crate) fn cacheable(sql: &str) -> bool {
    sql.len() <= MAX_QUERY_LEN && !sql.as_bytes().contains(&0)
}

/// Whether a statement (its tokens) is one whose literals may be replaced in the key.
pub(crate) fn normalisable(tokens: &[Token<'_>]) -> bool {
    tokens.first().is_some_and(|first| first.is_punct(b'(') || NORMALISED.iter().any(|w| first.is_word(w)))
}

/// What [`write`] found among a text's literals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Literals {
    /// Some literal was replaced: `buf` holds the key. Otherwise the text is its own key.
    pub replaced: bool,
    /// Some literal stays as written, in a statement whose values count (`SET a = 1`).
    pub kept: bool,
}

/// Writes the key of `split`'s text into `buf` when some literal is replaced, and says which
/// literals it found.
pub(crate) fn write(split: &Split<'_>, buf: &mut String) -> Literals {
    let mut found = Literals::default();
    let mut key = KeyWriter::new(split.sql, buf);
    for piece in &split.pieces {
        let tokens = &split.tokens[piece.range.clone()];
        let normalised = normalisable(tokens);
        for token in tokens {
            let Some(form) = literal_form(token.kind, token.text.as_bytes()) else { continue };
            if !normalised {
                found.kept = true;
                continue;
            }
            key.replace(token.start, token.end(), form);
        }
    }
    found.replaced = key.finish();
    found
}

/// The key [`write`] gives a text of one query or DML statement, found in one pass of the lexer
/// without cutting the text into statements: `Some(true)` when `buf` holds it, `Some(false)` when
/// the text is its own key. `None` leaves the text to the full cut: it does not start as a
/// statement whose literals are replaced, something follows a `;`, or a token never ends.
/// Tokens are read as kinds and offsets ([`token_at`]), none is built: this runs on every text
/// with literals, such as each statement of a transaction that inlines its values.
pub(crate) fn quick(sql: &str, buf: &mut String) -> Option<bool> {
    let bytes = sql.as_bytes();
    let mut at = 0;
    let first = loop {
        let start = skip(bytes, at, SPACE);
        let (kind, end) = token_at(sql, start)?;
        at = end;
        if kind != TokenKind::Comment {
            break Token { kind, text: &sql[start..end], start };
        }
    };
    if !normalisable(&[first]) {
        return None;
    }
    let mut key = KeyWriter::new(sql, buf);
    let mut ended = false;
    loop {
        let start = skip(bytes, at, SPACE);
        let Some((kind, end)) = token_at(sql, start) else { break };
        at = end;
        match kind {
            TokenKind::Comment => {}
            TokenKind::Unterminated => return None,
            _ if ended => return None,
            TokenKind::Punct => ended = bytes[start] == b';',
            TokenKind::String | TokenKind::Number => {
                if let Some(form) = literal_form(kind, &bytes[start..end]) {
                    key.replace(start, end, form);
                }
            }
            _ => {}
        }
    }
    Some(key.finish())
}

/// Writes a key into a buffer: the text, with literals replaced by markers as they are met.
struct KeyWriter<'a> {
    sql: &'a str,
    buf: &'a mut String,
    /// Where the text not yet copied starts.
    written: usize,
    replaced: bool,
}

impl<'a> KeyWriter<'a> {
    fn new(sql: &'a str, buf: &'a mut String) -> Self {
        KeyWriter { sql, buf, written: 0, replaced: false }
    }

    /// Copies the text up to the literal at `start..end` and writes its marker instead of it.
    fn replace(&mut self, start: usize, end: usize, form: char) {
        if !self.replaced {
            self.buf.clear();
            self.replaced = true;
        }
        self.buf.push_str(&self.sql[self.written..start]);
        self.buf.push('\0');
        self.buf.push(form);
        self.written = end;
    }

    /// Copies the rest of the text once something was replaced; whether something was.
    fn finish(self) -> bool {
        if self.replaced {
            self.buf.push_str(&self.sql[self.written..]);
        }
        self.replaced
    }
}

/// The marker letter of a literal the key replaces (a token of `kind` written as `bytes`); `None`
/// for any other token, and for numbers the lexer's loose scan took with trailing letters (`1e5`,
/// `10or`), which stay as written.
fn literal_form(kind: TokenKind, bytes: &[u8]) -> Option<char> {
    match kind {
        TokenKind::String => Some(match bytes[0] {
            b'\'' => 's',
            b'$' => '$',
            _ => 'e',
        }),
        TokenKind::Number if bytes.iter().all(u8::is_ascii_digit) => Some('i'),
        TokenKind::Number => {
            let dots = bytes.iter().filter(|b| **b == b'.').count();
            let digits = bytes.iter().all(|b| b.is_ascii_digit() || *b == b'.');
            (dots == 1 && digits && bytes.len() > 1).then_some('d')
        }
        _ => None,
    }
}
