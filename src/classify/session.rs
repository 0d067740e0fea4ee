//! Session and transaction commands, read token by token: SET, RESET, DISCARD, and BEGIN, COMMIT,
//! ROLLBACK, savepoints and two-phase commit.

use super::analysis::qualified_name;
use super::analysis::{identifier, Analysis};
use super::lexer::{TokenKind, Tokens};
use super::{DiscardKind, Intent, SessionChange, StatementKind as Kind};

/// Settings whose list values PostgreSQL quotes as identifiers (GUC_LIST_QUOTE).
const LIST_QUOTED: [&str; 5] = [
    "search_path",
    "temp_tablespaces",
    "local_preload_libraries",
    "session_preload_libraries",
    "shared_preload_libraries",
];

/// A session change; it needs no primary unless `writes`.
fn session(change: SessionChange, writes: bool) -> Analysis {
    Analysis { writes, ..Analysis::new(Intent::Session(change), Kind::Set) }
}

/// `SET …` after the SET keyword.
pub(crate) fn set(mut lexer: Tokens<'_>) -> Analysis {
    let mut next = lexer.next_significant();
    let local = next.is_some_and(|t| t.is_word("local"));
    let session_scope = next.is_some_and(|t| t.is_word("session"))
        && !lexer.peek().is_some_and(|t| t.is_word("characteristics") || t.is_word("authorization"));
    if local || session_scope {
        next = lexer.next_significant();
    }
    let Some(first) = next else { return Analysis::unknown() };
    if first.is_word("transaction") || first.is_word("constraints") {
        let name = identifier(&first);
        let modes = Modes::read(lexer);
        // A standby refuses SET TRANSACTION READ WRITE and SERIALIZABLE.
        let writes = name == "transaction" && (modes.read_only == Some(false) || modes.serializable);
        return session(SessionChange::Set { name, value: modes.text, local: true }, writes);
    }
    if first.is_word("session") && follows(&mut lexer, &["characteristics", "as", "transaction"]) {
        let value = Modes::read(lexer).text;
        return session(SessionChange::Set { name: "session_characteristics".into(), value, local }, false);
    }
    let special = [
        ("session", &["authorization"][..], "session_authorization"),
        ("time", &["zone"], "timezone"),
        ("xml", &["option"], "xmloption"),
        ("names", &[], "client_encoding"),
        ("schema", &[], "search_path"),
        ("role", &[], "role"),
    ];
    let name = match special.iter().find(|(word, rest, _)| first.is_word(word) && follows(&mut lexer, rest)) {
        Some((_, _, name)) => {
            // `SET role TO x` is also the generic form of `SET ROLE x`.
            if lexer.peek().is_some_and(|t| t.is_word("to") || t.is_punct(b'=')) {
                lexer.next_significant();
            }
            name.to_string()
        }
        None => {
            let Some(name) = qualified_name(first, &mut lexer) else { return Analysis::unknown() };
            if !lexer.next_significant().is_some_and(|t| t.is_word("to") || t.is_punct(b'=')) {
                return Analysis::unknown();
            }
            name
        }
    };
    set_value(name, local, lexer)
}

/// Consumes `words` if they come next, all of them; otherwise consumes nothing.
fn follows(lexer: &mut Tokens<'_>, words: &[&str]) -> bool {
    let mut after = lexer.clone();
    if words.iter().all(|w| after.next_significant().is_some_and(|t| t.is_word(w))) {
        *lexer = after;
        return true;
    }
    false
}

/// The value list of a SET, flattened as PostgreSQL stores it. A lone DEFAULT (and TIME ZONE LOCAL)
/// is a reset; under SET LOCAL it is reported as the value `default`, since it ends with the
/// transaction anyway.
fn set_value(name: String, local: bool, mut lexer: Tokens<'_>) -> Analysis {
    let mut items: Vec<String> = Vec::new();
    let mut sign = "";
    let mut default = false;
    while let Some(token) = lexer.next_significant() {
        match token.kind {
            TokenKind::Punct if token.is_punct(b',') => {}
            TokenKind::Punct if token.is_punct(b'-') || token.is_punct(b'+') => sign = token.text,
            TokenKind::Number => items.push(format!("{}{}", std::mem::take(&mut sign), token.text)),
            TokenKind::String => items.push(string_value(token.text)),
            TokenKind::Word if token.is_word("interval") => return Analysis::unknown(),
            TokenKind::Word | TokenKind::QuotedIdent => {
                default |= token.is_word("default") || (name == "timezone" && token.is_word("local"));
                items.push(identifier(&token));
            }
            _ => return Analysis::unknown(),
        }
    }
    match items.len() {
        0 => Analysis::unknown(),
        1 if default && !local => session(SessionChange::Reset { name }, false),
        1 if default => session(SessionChange::Set { name, value: "default".into(), local }, false),
        _ if default => Analysis::unknown(),
        _ => {
            if LIST_QUOTED.contains(&name.as_str()) {
                items.iter_mut().for_each(|item| *item = quote_identifier(item));
            }
            session(SessionChange::Set { name, value: items.join(", "), local }, false)
        }
    }
}

/// The content of a string constant: `'…'` with `''`, `E'…'` with backslash escapes, `$$…$$`.
fn string_value(text: &str) -> String {
    if let Some(body) = text.strip_prefix(['e', 'E']) {
        return unescape(&body[1..body.len() - 1]);
    }
    if let Some(after) = text.strip_prefix('$') {
        // The delimiter is `$tag$`: the first `$`, the tag, and the next `$`.
        let delimiter = after.find('$').map_or(1, |p| p + 2);
        return text[delimiter..text.len() - delimiter].to_string();
    }
    text[1..text.len() - 1].replace("''", "'")
}

/// Backslash escapes of an E'' string (the common ones; others stand for the escaped character).
fn unescape(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        let escaped = match c {
            '\\' => match chars.next() {
                Some('n') => '\n',
                Some('t') => '\t',
                Some('r') => '\r',
                Some('b') => '\u{8}',
                Some('f') => '\u{c}',
                Some(other) => other,
                None => break,
            },
            '\'' => {
                chars.next();
                '\''
            }
            other => other,
        };
        out.push(escaped);
    }
    out
}

/// Quotes a list element as PostgreSQL's quote_identifier does, unless it is a plain lowercase name.
fn quote_identifier(item: &str) -> String {
    let plain = item.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && item.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    match plain {
        true => item.to_string(),
        false => format!("\"{}\"", item.replace('"', "\"\"")),
    }
}

/// `RESET name | ALL | TIME ZONE | ROLE | SESSION AUTHORIZATION | TRANSACTION ISOLATION LEVEL`.
pub(crate) fn reset(mut lexer: Tokens<'_>) -> Analysis {
    let Some(first) = lexer.next_significant() else { return Analysis::unknown() };
    if first.is_word("all") && lexer.peek().is_none() {
        return session(SessionChange::ResetAll, false);
    }
    let special = [
        ("time", &["zone"][..], "timezone"),
        ("session", &["authorization"], "session_authorization"),
        ("transaction", &["isolation", "level"], "transaction_isolation"),
    ];
    let name = match special.iter().find(|(word, rest, _)| first.is_word(word) && follows(&mut lexer, rest)) {
        Some((_, _, name)) => name.to_string(),
        None => match qualified_name(first, &mut lexer) {
            Some(name) => name,
            None => return Analysis::unknown(),
        },
    };
    match lexer.next_significant() {
        None => session(SessionChange::Reset { name }, false),
        Some(_) => Analysis::unknown(),
    }
}

/// `DISCARD ALL | PLANS | SEQUENCES | TEMP | TEMPORARY`.
pub(crate) fn discard(mut lexer: Tokens<'_>) -> Analysis {
    let kind = match lexer.next_significant().map(|t| t.text.to_ascii_lowercase()).as_deref() {
        Some("all") => DiscardKind::All,
        Some("plans") => DiscardKind::Plans,
        Some("sequences") => DiscardKind::Sequences,
        Some("temp" | "temporary") => DiscardKind::Temp,
        _ => return Analysis::unknown(),
    };
    match lexer.next_significant() {
        None => session(SessionChange::Discard(kind), false),
        Some(_) => Analysis::unknown(),
    }
}

/// Transaction control after its first keyword (`verb`, lowercase). BEGIN needs the primary unless it
/// is READ ONLY and not SERIALIZABLE (which a standby refuses); two-phase commit commands need it
/// always; COMMIT, ROLLBACK and savepoints go wherever the open transaction is.
pub(crate) fn transaction(verb: &str, mut lexer: Tokens<'_>) -> Analysis {
    let next = lexer.peek();
    let is_next = |word: &str| next.is_some_and(|t| t.is_word(word));
    let (intent, writes) = match verb {
        "begin" | "start" => {
            if verb == "start" && !is_next("transaction") {
                return Analysis::unknown();
            }
            if is_next("transaction") || is_next("work") {
                lexer.next_significant();
            }
            let modes = Modes::read(lexer);
            (Intent::Begin { read_only: modes.read_only }, modes.needs_primary())
        }
        "commit" => (Intent::EndTransaction { rollback: false }, is_next("prepared")),
        "prepare" => (Intent::EndTransaction { rollback: false }, true),
        "end" => (Intent::EndTransaction { rollback: false }, false),
        "abort" => (Intent::EndTransaction { rollback: true }, false),
        "savepoint" | "release" => (Intent::Savepoint, false),
        _ => {
            // ROLLBACK [WORK | TRANSACTION] [TO …] or ROLLBACK PREPARED 'gid'.
            let mut words = std::iter::from_fn(|| lexer.next_significant()).take(2);
            match words.find(|t| !t.is_word("work") && !t.is_word("transaction")) {
                Some(t) if t.is_word("to") => (Intent::Savepoint, false),
                Some(t) if t.is_word("prepared") => (Intent::EndTransaction { rollback: false }, true),
                _ => (Intent::EndTransaction { rollback: true }, false),
            }
        }
    };
    Analysis { writes, ..Analysis::new(intent, Kind::Transaction) }
}

/// Transaction modes (ISOLATION LEVEL …, READ ONLY/WRITE, [NOT] DEFERRABLE) and their text.
struct Modes {
    read_only: Option<bool>,
    serializable: bool,
    /// The words, lowercase, strings unquoted, separated by single spaces.
    text: String,
}

impl Modes {
    fn read(lexer: Tokens<'_>) -> Modes {
        let mut modes = Modes { read_only: None, serializable: false, text: String::new() };
        let mut previous_read = false;
        for token in lexer.filter(|t| t.kind != TokenKind::Comment) {
            let word = match token.kind {
                TokenKind::String => string_value(token.text),
                TokenKind::Word | TokenKind::QuotedIdent => identifier(&token),
                _ => token.text.to_string(),
            };
            match word.as_str() {
                "only" if previous_read => modes.read_only = Some(true),
                "write" if previous_read => modes.read_only = Some(false),
                "serializable" => modes.serializable = true,
                _ => {}
            }
            previous_read = word == "read";
            if !modes.text.is_empty() && word != "," {
                modes.text.push(' ');
            }
            modes.text.push_str(&word);
        }
        modes
    }

    /// Whether a standby would refuse a transaction with these modes.
    fn needs_primary(&self) -> bool {
        self.read_only != Some(true) || self.serializable
    }
}
