//! The fast path for the commonest query: one plain SELECT over a FROM list of named tables and
//! joins, with no subquery, CTE, set operation, INTO or row lock. Such a query only reads, and its
//! tables and calls can be read off the tokens, about ten times cheaper than sqlparser.
//!
//! Anything outside that shape returns `None` and is parsed as before, so this path only has to be
//! right about what it accepts. A unit test checks it against the parser on every SELECT of the
//! statement table: same tables, same functions.

use super::analysis::{identifier, push_unique, Analysis};
use super::lexer::{Token, TokenKind, Tokens};
use super::StatementKind;

/// Deepest nesting of parentheses taken; deeper text goes to the parser, which refuses it as
/// sqlparser does past its recursion limit, so both paths agree on what is too deep.
const MAX_DEPTH: u32 = 50;

/// Where the scan stands in the statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between SELECT and FROM.
    List,
    /// Where a table name must come: after FROM, a comma or JOIN.
    Table,
    /// After a table name, where `.`, an alias, a join, a comma or a clause may come.
    AfterTable,
    /// After AS: the alias must come.
    Alias,
    /// After an alias: a join, a comma or a clause.
    AfterAlias,
    /// In a join's ON or USING condition.
    Condition,
    /// WHERE, GROUP BY, ORDER BY, LIMIT … up to the end.
    Tail,
}

/// The words that steer the scan; any other word is [`Word::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Word {
    /// Ends the FROM list: WHERE, GROUP, HAVING, ORDER, LIMIT, OFFSET, FETCH, WINDOW.
    Clause,
    /// Starts or continues a join: JOIN, LEFT, RIGHT, FULL, INNER, CROSS, NATURAL, OUTER.
    Join,
    From,
    Distinct,
    As,
    On,
    Using,
    /// Takes the query out of this path's shape (subqueries, CTEs, set operations, INTO, locks,
    /// table functions and samples …).
    Bail,
    /// Followed by `(` without being a function call (EXISTS, ANY, CAST, EXTRACT, OVER …).
    NotCall,
    Other,
}

/// Classifies a statement (its tokens, as the split cut them) if it has the simple shape; `None`
/// sends it to the parser.
pub(crate) fn select(tokens: Tokens<'_>) -> Option<Analysis> {
    let mut tokens = tokens.peekable();
    if !tokens.next()?.is_word("select") {
        return None;
    }
    let mut scan = Scan {
        state: State::List,
        depth: 0,
        previous: None,
        table: None,
        analysis: Analysis::read(StatementKind::Select),
    };
    while let Some(token) = tokens.next() {
        let opens = tokens.peek().is_some_and(|t| t.is_punct(b'('));
        if scan.state == State::AfterTable && !token.is_punct(b'.') {
            scan.end_table();
        }
        scan.token(token, opens)?;
        scan.previous = Some(token);
    }
    scan.end_table();
    let complete =
        matches!(scan.state, State::List | State::AfterTable | State::AfterAlias | State::Condition | State::Tail);
    (complete && scan.depth == 0).then_some(scan.analysis)
}

/// The scan of one statement.
struct Scan<'a> {
    state: State,
    depth: u32,
    previous: Option<Token<'a>>,
    /// The table name being read, `schema.` parts included, until what follows shows it is whole.
    table: Option<String>,
    analysis: Analysis,
}

impl<'a> Scan<'a> {
    /// Takes one significant token; `opens` says whether `(` follows it. `None` bails out.
    fn token(&mut self, token: Token<'a>, opens: bool) -> Option<()> {
        match token.kind {
            TokenKind::Unterminated => return None,
            TokenKind::Punct => return self.punct(token),
            TokenKind::Word | TokenKind::QuotedIdent => {}
            _ => return self.other(),
        }
        let word = match token.kind {
            TokenKind::Word => classify_word(token.text),
            _ => Word::Other,
        };
        // left( and right( are functions, not joins.
        let word = if opens && word == Word::Join { Word::Other } else { word };
        if word == Word::Bail {
            return None;
        }
        if opens && word == Word::Other && !self.after_type_cast() {
            push_unique(&mut self.analysis.functions, identifier(&token));
        }
        if self.depth > 0 {
            return Some(());
        }
        self.word(token, word, opens)
    }

    /// A word at depth 0: moves through the FROM list.
    fn word(&mut self, token: Token<'a>, word: Word, opens: bool) -> Option<()> {
        let distinct_from = word == Word::From && self.previous.is_some_and(|p| p.is_word("distinct"));
        self.state = match (self.state, word) {
            (_, Word::From) if distinct_from => self.state,
            (State::List, Word::From) => State::Table,
            (State::Tail, Word::From) => return None,
            (State::List | State::Tail, _) => self.state,
            (State::Table, Word::Other) if !opens => {
                self.table.get_or_insert_with(String::new).push_str(&identifier(&token));
                State::AfterTable
            }
            (State::Table, _) => return None,
            (State::AfterTable | State::AfterAlias | State::Condition, Word::Clause) => State::Tail,
            (State::AfterTable | State::AfterAlias | State::Condition, Word::Join) => {
                if token.is_word("join") {
                    State::Table
                } else {
                    State::AfterAlias
                }
            }
            (State::AfterTable | State::AfterAlias, Word::On | Word::Using) => State::Condition,
            (State::AfterTable, Word::As) => State::Alias,
            (State::AfterTable | State::Alias, Word::Other) if !opens => State::AfterAlias,
            (State::Condition, Word::Other | Word::NotCall | Word::Distinct | Word::As) => State::Condition,
            _ => return None,
        };
        Some(())
    }

    /// Punctuation: parentheses, `schema.table` and commas in the FROM list.
    fn punct(&mut self, token: Token<'a>) -> Option<()> {
        match token.text.as_bytes()[0] {
            b'(' if self.depth == 0 && !matches!(self.state, State::List | State::Condition | State::Tail) => None,
            b'(' if self.depth >= MAX_DEPTH => None,
            b'(' => {
                self.depth += 1;
                Some(())
            }
            b')' => {
                self.depth = self.depth.checked_sub(1)?;
                Some(())
            }
            _ if self.depth > 0 => Some(()),
            b'.' if self.state == State::AfterTable => self.qualify(),
            b',' if matches!(self.state, State::AfterTable | State::AfterAlias | State::Condition) => {
                self.state = State::Table;
                Some(())
            }
            _ => self.other(),
        }
    }

    /// `schema.` before a table name: the name that follows completes this one.
    fn qualify(&mut self) -> Option<()> {
        self.table.as_mut()?.push('.');
        self.state = State::Table;
        Some(())
    }

    /// The table name read so far is whole.
    fn end_table(&mut self) {
        if let Some(table) = self.table.take() {
            push_unique(&mut self.analysis.tables, table);
        }
    }

    /// Strings, numbers, parameters and operators: fine anywhere but where a table name belongs.
    fn other(&self) -> Option<()> {
        match (self.depth, self.state) {
            (0, State::Table | State::AfterTable | State::Alias | State::AfterAlias) => None,
            _ => Some(()),
        }
    }

    /// Whether the previous token ends `::` or is `AS` inside parentheses: then a `name(` is a
    /// type with a modifier (`::numeric(10,2)`, `CAST(x AS varchar(20))`), not a call.
    fn after_type_cast(&self) -> bool {
        self.previous.is_some_and(|p| p.is_punct(b':') || (self.depth > 0 && p.is_word("as")))
    }
}

/// Sorts a word into the few classes the scan cares about, ignoring case.
fn classify_word(text: &str) -> Word {
    let mut buf = [0u8; 16];
    let Some(lower) = buf.get_mut(..text.len()) else { return Word::Other };
    lower.copy_from_slice(text.as_bytes());
    lower.make_ascii_lowercase();
    match &*lower {
        b"where" | b"group" | b"having" | b"order" | b"limit" | b"offset" | b"fetch" | b"window" => Word::Clause,
        b"join" | b"left" | b"right" | b"full" | b"inner" | b"cross" | b"natural" | b"outer" => Word::Join,
        b"from" => Word::From,
        b"distinct" => Word::Distinct,
        b"as" => Word::As,
        b"on" => Word::On,
        b"using" => Word::Using,
        b"select" | b"with" | b"recursive" | b"into" | b"insert" | b"update" | b"delete" | b"merge" | b"values"
        | b"table" | b"lateral" | b"returning" | b"for" | b"union" | b"intersect" | b"except" | b"only"
        | b"tablesample" | b"rows" | b"ordinality" => Word::Bail,
        b"exists" | b"in" | b"any" | b"all" | b"some" | b"cast" | b"try_cast" | b"extract" | b"substring" | b"trim"
        | b"position" | b"overlay" | b"ceil" | b"ceiling" | b"floor" | b"convert" | b"over" | b"filter" | b"and"
        | b"or" | b"not" | b"when" | b"then" | b"else" | b"case" | b"is" | b"between" | b"like" | b"ilike"
        | b"similar" | b"by" | b"end" | b"array" | b"row" | b"interval" | b"operator" => Word::NotCall,
        _ => Word::Other,
    }
}
