//! What one statement means, before statements are combined into a [`Classification`], and
//! the identifier helpers every statement reader shares.

use std::borrow::Cow;

use super::lexer::{Token, TokenKind, Tokens};
use super::{Intent, StatementKind};

/// What one statement means; combined into a [`Classification`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Analysis {
    pub intent: Intent,
    pub writes: bool,
    pub kind: StatementKind,
    pub tables: Vec<String>,
    pub functions: Vec<String>,
}

impl Analysis {
    /// A statement whose intent alone says whether it needs the primary.
    pub fn new(intent: Intent, kind: StatementKind) -> Self {
        let writes = matches!(intent, Intent::Write | Intent::Unknown);
        Analysis { intent, writes, kind, tables: Vec::new(), functions: Vec::new() }
    }

    /// A write of this kind.
    pub fn write(kind: StatementKind) -> Self {
        Analysis::new(Intent::Write, kind)
    }

    /// A read of this kind.
    pub fn read(kind: StatementKind) -> Self {
        Analysis::new(Intent::Read, kind)
    }

    /// A statement not understood.
    pub fn unknown() -> Self {
        Analysis::new(Intent::Unknown, StatementKind::Other)
    }

    /// Makes a read a write (an unknown stays unknown); both must go to the primary.
    pub(super) fn make_write(&mut self) {
        if self.intent == Intent::Read {
            self.intent = Intent::Write;
        }
        self.writes = true;
    }
}

/// An identifier as PostgreSQL stores it: unquoted folded to lowercase, quoted taken verbatim.
pub(crate) fn identifier(token: &Token<'_>) -> String {
    match token.kind {
        TokenKind::QuotedIdent if token.text.contains("\"\"") => {
            token.text[1..token.text.len() - 1].replace("\"\"", "\"")
        }
        TokenKind::QuotedIdent => token.text[1..token.text.len() - 1].to_string(),
        _ => token.text.to_ascii_lowercase(),
    }
}

/// [`identifier`] without allocating for a word of up to `buf`'s length or a quoted name without
/// doubled quotes: what checking a call against the write functions needs, for every call.
pub(crate) fn folded<'a>(token: Token<'a>, buf: &'a mut [u8]) -> Cow<'a, str> {
    match token.kind {
        TokenKind::QuotedIdent if !token.text.contains("\"\"") => Cow::Borrowed(&token.text[1..token.text.len() - 1]),
        TokenKind::Word if !token.text.bytes().any(|b| b.is_ascii_uppercase()) => Cow::Borrowed(token.text),
        TokenKind::Word if token.text.len() <= buf.len() => {
            let lower = &mut buf[..token.text.len()];
            lower.copy_from_slice(token.text.as_bytes());
            lower.make_ascii_lowercase();
            // Lowercasing ASCII bytes keeps UTF-8 valid; the fallback only satisfies the types.
            std::str::from_utf8(lower).map_or_else(|_| Cow::Owned(identifier(&token)), Cow::Borrowed)
        }
        _ => Cow::Owned(identifier(&token)),
    }
}

/// Appends `item` unless it is already there; lists are short, so a scan is cheapest.
pub(crate) fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// A possibly qualified name starting at `first`, as `schema.table`; `None` if `first` is no name.
pub(crate) fn qualified_name(first: Token<'_>, lexer: &mut Tokens<'_>) -> Option<String> {
    if !first.is_name() {
        return None;
    }
    let mut name = identifier(&first);
    while lexer.peek().is_some_and(|t| t.is_punct(b'.')) {
        let mut after = lexer.clone();
        after.next_significant();
        let Some(part) = after.next_significant().filter(Token::is_name) else { break };
        *lexer = after;
        name.push('.');
        name.push_str(&identifier(&part));
    }
    Some(name)
}
