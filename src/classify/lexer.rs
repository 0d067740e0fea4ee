//! Cheap SQL tokenizing and statement splitting, as PostgreSQL's own scanner sees the text.
//!
//! Strings (`'…'`, `E'…'`), quoted identifiers, dollar quotes and comments (nested `/* */`, `--`) are
//! kept whole, so a `;` or a keyword inside them is never mistaken for SQL. Splitting also notes what
//! is cheap to see on the way: row-locking clauses and the operator count that bounds
//! how deep a parsed expression can nest. Strings follow `standard_conforming_strings = on`.
//!
//! A text is lexed once: [`split`] keeps its significant tokens, and every later reader of a
//! statement walks them with [`Tokens`].

use smallvec::SmallVec;

/// What a token is; keywords and identifiers are both `Word`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// Keyword or unquoted identifier.
    Word,
    /// `"identifier"`, quotes included.
    QuotedIdent,
    /// A string constant in any form (`'…'`, `E'…'`, `$tag$…$tag$`), quotes included.
    String,
    /// A numeric constant.
    Number,
    /// A parameter placeholder, `$1`.
    Param,
    /// One byte of punctuation or operator.
    Punct,
    /// A `--` or `/* */` comment, markers included.
    Comment,
    /// A string, identifier or comment that runs to the end of the text.
    Unterminated,
}

/// One token: its kind, its text as written and where that text starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    pub kind: TokenKind,
    pub text: &'a str,
    pub start: usize,
}

impl Token<'_> {
    /// Whether this is the word `keyword` in any case.
    pub fn is_word(&self, keyword: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(keyword)
    }

    /// Whether this is the punctuation byte `c`.
    pub fn is_punct(&self, c: u8) -> bool {
        self.kind == TokenKind::Punct && self.text.as_bytes()[0] == c
    }

    /// Whether this can name something: a word or a quoted identifier.
    pub fn is_name(&self) -> bool {
        matches!(self.kind, TokenKind::Word | TokenKind::QuotedIdent)
    }

    /// Where the token's text ends.
    pub fn end(&self) -> usize {
        self.start + self.text.len()
    }
}

/// Iterates over the tokens of a text, comments included; offsets are relative to that text.
#[derive(Clone)]
pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// Starts at the beginning of `src`.
    pub fn new(src: &'a str) -> Self {
        Lexer { src, pos: 0 }
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Token<'a>;

    #[inline]
    fn next(&mut self) -> Option<Token<'a>> {
        let start = skip(self.src.as_bytes(), self.pos, SPACE);
        let (kind, end) = token_at(self.src, start)?;
        self.pos = end;
        Some(Token { kind, text: &self.src[start..end], start })
    }
}

/// The token starting at `start` (not a space), its kind and end; `None` at the end of `src`.
/// Inlined into each reader's loop, with the rare tokens (comments, quotes, dollar quotes) out of
/// line, and scanned with index loops: iterator adaptors here cost twice the scan.
#[inline]
pub(crate) fn token_at(src: &str, start: usize) -> Option<(TokenKind, usize)> {
    let bytes = src.as_bytes();
    let &first = bytes.get(start)?;
    Some(if is_ident_start(first) {
        let end = skip(bytes, start + 1, IDENT_CONT);
        if end == start + 1 && (first == b'e' || first == b'E') && bytes.get(end) == Some(&b'\'') {
            quoted(bytes, end, b'\'', true, TokenKind::String)
        } else {
            (TokenKind::Word, end)
        }
    } else {
        other(src, start, first)
    })
}

/// A token that does not start with a letter: number, quote, comment, `$` or a symbol.
#[inline]
fn other(src: &str, start: usize, first: u8) -> (TokenKind, usize) {
    let bytes = src.as_bytes();
    let next = bytes.get(start + 1).copied();
    match first {
        b'-' if next == Some(b'-') => (TokenKind::Comment, line_end(bytes, start)),
        b'/' if next == Some(b'*') => block_comment(bytes, start),
        b'\'' => quoted(bytes, start, b'\'', false, TokenKind::String),
        b'"' => quoted(bytes, start, b'"', false, TokenKind::QuotedIdent),
        b'$' => dollar(src, start),
        b'0'..=b'9' => (TokenKind::Number, skip(bytes, start, NUMBER_CONT)),
        b'.' if next.is_some_and(|b| b.is_ascii_digit()) => (TokenKind::Number, skip(bytes, start, NUMBER_CONT)),
        _ => (TokenKind::Punct, start + 1),
    }
}

/// Where the run of bytes of `class` from `at` ends.
#[inline]
pub(crate) fn skip(bytes: &[u8], mut at: usize, class: u8) -> usize {
    while at < bytes.len() && CLASSES[bytes[at] as usize] & class != 0 {
        at += 1;
    }
    at
}

/// Byte classes in one table, as every byte of every text is classified: one load instead of a
/// chain of comparisons.
pub(crate) const SPACE: u8 = 1;
const IDENT_START: u8 = 2;
const IDENT_CONT: u8 = 4;
/// Bytes of a numeric constant, scanned loosely: nothing here needs its value.
const NUMBER_CONT: u8 = 8;
static CLASSES: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        // PostgreSQL's whitespace: space, tab, newline, carriage return, form feed, vertical tab.
        if matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            table[b] |= SPACE;
        }
        // Bytes of multi-byte characters count as letters, as in PostgreSQL.
        if byte.is_ascii_alphabetic() || byte == b'_' || byte >= 0x80 {
            table[b] |= IDENT_START | IDENT_CONT;
        }
        // `$` may follow the first byte.
        if byte.is_ascii_digit() || byte == b'$' {
            table[b] |= IDENT_CONT;
        }
        if byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'_' {
            table[b] |= NUMBER_CONT;
        }
        b += 1;
    }
    table
}

/// First byte of an identifier.
fn is_ident_start(b: u8) -> bool {
    CLASSES[b as usize] & IDENT_START != 0
}

/// Later bytes of an identifier.
fn is_ident_cont(b: u8) -> bool {
    CLASSES[b as usize] & IDENT_CONT != 0
}

/// End of a `--` comment: the end of its line.
#[inline(never)]
fn line_end(bytes: &[u8], start: usize) -> usize {
    bytes[start..].iter().position(|b| *b == b'\n' || *b == b'\r').map_or(bytes.len(), |p| start + p)
}

/// A `/* */` comment, which nests in PostgreSQL.
#[inline(never)]
fn block_comment(bytes: &[u8], start: usize) -> (TokenKind, usize) {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return (TokenKind::Comment, i);
                }
            }
            _ => i += 1,
        }
    }
    (TokenKind::Unterminated, bytes.len())
}

/// A quoted token whose quote byte is at `open`; a doubled quote stands for itself, and with
/// `backslash` (E'…') a backslash escapes the next byte.
#[inline(never)]
fn quoted(bytes: &[u8], open: usize, quote: u8, backslash: bool, kind: TokenKind) -> (TokenKind, usize) {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return (kind, i + 1),
            _ => i += 1,
        }
    }
    (TokenKind::Unterminated, bytes.len())
}

/// `$1` (a parameter), `$tag$…$tag$` (a dollar-quoted string) or a lone `$`.
#[inline(never)]
fn dollar(src: &str, start: usize) -> (TokenKind, usize) {
    let bytes = src.as_bytes();
    let mut i = start + 1;
    if bytes.get(i).is_some_and(|b| b.is_ascii_digit()) {
        i += bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        return (TokenKind::Param, i);
    }
    if bytes.get(i).is_some_and(|b| is_ident_start(*b)) {
        i += bytes[i..].iter().take_while(|b| is_ident_cont(**b) && **b != b'$').count();
    }
    if bytes.get(i) != Some(&b'$') {
        return (TokenKind::Punct, start + 1);
    }
    let delimiter = &src[start..=i];
    match src[i + 1..].find(delimiter) {
        Some(p) => (TokenKind::String, i + 1 + p + delimiter.len()),
        None => (TokenKind::Unterminated, bytes.len()),
    }
}

/// The significant tokens of a statement, read one at a time: what the lexer already cut, so the
/// readers of each statement (keyword decision, session commands, pins) never scan its text again.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tokens<'a> {
    list: &'a [Token<'a>],
}

impl<'a> Tokens<'a> {
    /// Reads `list` from its first token.
    pub fn new(list: &'a [Token<'a>]) -> Self {
        Tokens { list }
    }

    /// The next token (comments are never among them).
    pub fn next_significant(&mut self) -> Option<Token<'a>> {
        self.next()
    }

    /// The next token, without consuming it.
    pub fn peek(&self) -> Option<Token<'a>> {
        self.list.first().copied()
    }

    /// The tokens not read yet.
    pub fn rest(&self) -> &'a [Token<'a>] {
        self.list
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let (first, rest) = self.list.split_first()?;
        self.list = rest;
        Some(*first)
    }
}

/// A run of a text's significant tokens, with the text they were cut from: a statement, or the
/// statement inside EXPLAIN or `COPY (…)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span<'a> {
    pub sql: &'a str,
    pub tokens: &'a [Token<'a>],
}

impl<'a> Span<'a> {
    /// From the first token to the last, inner comments included; empty when there is no token.
    pub fn text(&self) -> &'a str {
        match (self.tokens.first(), self.tokens.last()) {
            (Some(first), Some(last)) => &self.sql[first.start..last.end()],
            _ => "",
        }
    }

    /// A reader of the tokens from the first.
    pub fn tokens(&self) -> Tokens<'a> {
        Tokens::new(self.tokens)
    }

    /// Every `name(` or `schema.name(` among the tokens, including type modifiers and keywords
    /// before a parenthesis: a superset of the calls. Read off the tokens when asked, so cutting
    /// a statement keeps no list of them.
    pub fn calls(&self) -> impl Iterator<Item = Call<'a>> + 'a {
        let tokens = self.tokens;
        (1..tokens.len()).filter(move |&i| tokens[i].is_punct(b'(') && tokens[i - 1].is_name()).map(move |i| {
            let schema = (i >= 3 && tokens[i - 2].is_punct(b'.') && tokens[i - 3].is_name()).then(|| tokens[i - 3]);
            Call { schema, name: tokens[i - 1] }
        })
    }
}

/// A call seen as `name(` or `schema.name(`, tokens as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Call<'a> {
    pub schema: Option<Token<'a>>,
    pub name: Token<'a>,
}

/// One statement of a simple query, with what the lexer noticed in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Piece<'a> {
    /// From the statement's first token to its last, inner comments included, without the `;`.
    pub text: &'a str,
    /// Where its significant tokens are in [`Split::tokens`].
    pub range: std::ops::Range<usize>,
    /// A row-locking clause: FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE, FOR KEY SHARE.
    pub locks_rows: bool,
    /// Operators (symbols, AND, OR, IS …): an upper bound on how deep a parsed expression nests.
    pub operators: usize,
    /// Tokens other than comments: what parsing the statement costs.
    pub tokens: usize,
    /// A string, identifier or comment in it never ends; the server will reject the text.
    pub unterminated: bool,
}

/// A simple query cut into statements in one pass of the lexer: its significant tokens (inline up
/// to a typical statement's count), the statements over them, and every comment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Split<'a> {
    pub sql: &'a str,
    pub tokens: SmallVec<[Token<'a>; 64]>,
    pub pieces: SmallVec<[Piece<'a>; 2]>,
    pub comments: SmallVec<[&'a str; 2]>,
}

impl<'a> Split<'a> {
    /// The tokens of one of its statements.
    pub fn span(&self, piece: &Piece<'a>) -> Span<'_> {
        Span { sql: self.sql, tokens: &self.tokens[piece.range.clone()] }
    }
}

/// Whether a word combines expressions (AND, OR, IS …); counted with symbolic operators.
fn is_operator_word(word: &str) -> bool {
    let candidates: &[&str] = match word.len() {
        2 => &["or", "is", "in", "at"],
        3 => &["and", "not"],
        4 => &["like"],
        5 => &["ilike"],
        7 => &["similar", "between", "collate"],
        8 => &["operator"],
        _ => return false,
    };
    candidates.iter().any(|c| word.eq_ignore_ascii_case(c))
}

/// Cuts `sql` at each `;` that ends a statement, as psql does: not inside parentheses, nor inside
/// the `BEGIN … END` body of CREATE FUNCTION or PROCEDURE. Empty statements are dropped. The
/// classifier cuts in place ([`Split::cut`]); this returns the value, for tests.
#[cfg(test)]
pub(crate) fn split(sql: &str) -> Split<'_> {
    let mut split = Split::default();
    split.cut(sql);
    split
}

impl<'a> Split<'a> {
    /// Cuts `sql` into this (empty) value, where it stands, as `split` describes: a split holds
    /// its tokens inline, and the classifier cuts every text, so it is not moved.
    pub fn cut(&mut self, sql: &'a str) {
        self.sql = sql;
        let mut piece = PieceBuilder::default();
        for token in Lexer::new(sql) {
            if token.kind == TokenKind::Comment {
                self.comments.push(token.text);
            } else if token.is_punct(b';') && piece.parens <= 0 && piece.begin_depth == 0 {
                self.pieces.extend(std::mem::take(&mut piece).finish(sql, self.tokens.len()));
            } else {
                let before = match piece.start {
                    Some(_) => &self.tokens[piece.first..],
                    None => &[],
                };
                piece.feed(token, before, self.tokens.len());
                self.tokens.push(token);
            }
        }
        self.pieces.extend(piece.finish(sql, self.tokens.len()));
    }
}
/// Where a statement stands in CREATE [OR REPLACE] FUNCTION|PROCEDURE, whose body may hold `;`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Head {
    #[default]
    Start,
    Create,
    CreateOr,
    CreateOrReplace,
    Routine,
    Other,
}

/// The statement being cut, fed one significant token at a time.
#[derive(Default)]
struct PieceBuilder<'a> {
    start: Option<usize>,
    /// Index of its first token in the split's token list.
    first: usize,
    end: usize,
    parens: i32,
    head: Head,
    begin_depth: u32,
    piece: Piece<'a>,
}

impl<'a> PieceBuilder<'a> {
    /// Takes the next significant token, which the split stores at `index`; `before` are the
    /// statement's tokens so far.
    fn feed(&mut self, token: Token<'a>, before: &[Token<'a>], index: usize) {
        if self.start.is_none() {
            self.start = Some(token.start);
            self.first = index;
        }
        self.end = token.end();
        self.piece.tokens += 1;
        match token.kind {
            TokenKind::Word => self.word(token, before),
            TokenKind::Punct => self.punct(token),
            TokenKind::Unterminated => self.piece.unterminated = true,
            _ => {}
        }
    }

    fn word(&mut self, token: Token<'a>, before: &[Token<'a>]) {
        let back = |n: usize, w: &str| before.len() >= n && before[before.len() - n].is_word(w);
        let [r0, r1, r2] = [1, 2, 3].map(|n| move |w: &str| back(n, w));
        if (token.is_word("update") && (r0("for") || (r0("key") && r1("no") && r2("for"))))
            || (token.is_word("share") && (r0("for") || (r0("key") && r1("for"))))
        {
            self.piece.locks_rows = true;
        }
        if is_operator_word(token.text) {
            self.piece.operators += 1;
        }
        self.head = match self.head {
            Head::Start if token.is_word("create") => Head::Create,
            Head::Create if token.is_word("or") => Head::CreateOr,
            Head::CreateOr if token.is_word("replace") => Head::CreateOrReplace,
            Head::Create | Head::CreateOrReplace if token.is_word("function") || token.is_word("procedure") => {
                Head::Routine
            }
            Head::Routine => Head::Routine,
            _ => Head::Other,
        };
        if self.head == Head::Routine && self.parens == 0 {
            if token.is_word("begin") || (token.is_word("case") && self.begin_depth > 0) {
                self.begin_depth += 1;
            } else if token.is_word("end") {
                self.begin_depth = self.begin_depth.saturating_sub(1);
            }
        }
    }

    fn punct(&mut self, token: Token<'a>) {
        match token.text.as_bytes()[0] {
            b'(' => self.parens += 1,
            b')' => self.parens -= 1,
            b',' | b'.' | b'[' | b']' | b';' => {}
            _ => self.piece.operators += 1,
        }
    }

    /// The statement, whose tokens end before index `end` of the split's list; `None` if empty.
    fn finish(self, sql: &'a str, end: usize) -> Option<Piece<'a>> {
        let start = self.start?;
        Some(Piece { text: &sql[start..self.end], range: self.first..end, ..self.piece })
    }
}
