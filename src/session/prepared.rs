//! Named prepared statements across server connections. A client's statement names are its own;
//! on servers each distinct (text, parameter types) gets one pgsplit name (`pgsplit_N`), shared
//! by every client. A request is rewritten on its way out: Parse, Bind, Describe and Close carry
//! the server name; a statement the connection lacks is prepared first, in the same pipeline,
//! and its reply swallowed; a Parse the connection already has, and every Close of a named
//! statement, are answered by pgsplit itself.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::classify::Classification;
use crate::protocol::build::{self, Severity};
use crate::protocol::frame::{messages, whole_messages};
use crate::protocol::from_client as c;
use crate::protocol::sqlstate;
use crate::server::expect::{Kind, CLOSE_COMPLETE, PARSE_COMPLETE};
use crate::server::outgoing::put_message;
use crate::server::{Outgoing, ServerConn};
use crate::state::statements::StatementIds;

/// One of the client's named statements.
#[derive(Debug)]
struct Statement {
    id: u64,
    /// The Parse message that prepares it on a server, under its server name.
    parse: Bytes,
    /// What it does, for routing the Binds that run it.
    class: Arc<Classification>,
}

/// A client's named statements: the one map by client name, for rewriting and for routing.
#[derive(Debug, Default)]
pub struct Prepared {
    by_name: HashMap<Box<[u8]>, Arc<Statement>>,
}

/// The server-side name of statement `id`.
fn server_name(id: u64) -> String {
    format!("pgsplit_{id}")
}

impl Prepared {
    /// Whether a request mentions named statements at all; most do not and go out untouched.
    pub fn touches_named(batch: &[u8]) -> bool {
        messages(batch).any(|(tag, body)| match tag {
            c::PARSE => body.first().is_some_and(|&b| b != 0),
            c::BIND => c::bind_statement(body).is_some_and(|n| !n.is_empty()),
            c::DESCRIBE | c::CLOSE => c::target(body).is_some_and(|(k, n)| k == b'S' && !n.is_empty()),
            _ => false,
        })
    }

    /// How the statement the client named `name` was classified, if it prepared one.
    pub fn class_of(&self, name: &[u8]) -> Option<&Arc<Classification>> {
        self.by_name.get(name).map(|s| &s.class)
    }

    /// Forgets every statement (DISCARD ALL, DEALLOCATE ALL).
    pub fn clear(&mut self) {
        self.by_name.clear();
    }

    /// Rewrites a request for `server`: the bytes to send and the replies they owe. `named` has
    /// the classification of each named Parse in the request, in order.
    pub fn rewrite(
        &mut self,
        registry: &StatementIds,
        batch: &[u8],
        named: &[Arc<Classification>],
        server: &mut ServerConn,
    ) -> Outgoing {
        let mut out = Outgoing::with_capacity(batch.len() + 64);
        let mut named = named.iter();
        let mut skipping = false;
        for whole in whole_messages(batch) {
            let (tag, body) = (whole[0], &whole[5..]);
            if skipping && tag != c::SYNC {
                continue;
            }
            skipping = false;
            match tag {
                c::PARSE if body.first().is_some_and(|&b| b != 0) => {
                    skipping = !self.parse(registry, body, named.next(), server, &mut out)
                }
                c::BIND => self.bind(registry, body, server, &mut out),
                c::DESCRIBE | c::CLOSE if c::target(body).is_some_and(|(k, n)| k == b'S' && !n.is_empty()) => {
                    self.statement_target(registry, tag, body, server, &mut out)
                }
                _ => out.forward(tag, body),
            }
        }
        out
    }

    /// A named Parse; `false` when it is refused (the name is taken) and the server would skip to Sync.
    fn parse(
        &mut self,
        registry: &StatementIds,
        body: &[u8],
        class: Option<&Arc<Classification>>,
        server: &mut ServerConn,
        out: &mut Outgoing,
    ) -> bool {
        let (Some((name, _)), Some(class)) = (c::parse_message(body), class) else {
            out.forward(c::PARSE, body);
            return true;
        };
        if self.by_name.contains_key(name) {
            let mut err = BytesMut::new();
            let message = format!("prepared statement \"{}\" already exists", String::from_utf8_lossy(name));
            build::error(&mut err, Severity::Error, sqlstate::DUPLICATE_PREPARED_STATEMENT, &message, None);
            out.answer(Kind::Parse, err.freeze());
            return false;
        }
        let rest = &body[name.len() + 1..];
        let id = registry.id_for(rest);
        let parse = parse_message(&server_name(id), rest);
        self.by_name.insert(name.into(), Arc::new(Statement { id, parse: parse.clone(), class: class.clone() }));
        if server.has_statement(id) {
            out.answer(Kind::Parse, Bytes::from_static(PARSE_COMPLETE));
        } else {
            add_statement(registry, server, id, out);
            out.forward_parse(&parse, id);
        }
        true
    }

    fn bind(&mut self, registry: &StatementIds, body: &[u8], server: &mut ServerConn, out: &mut Outgoing) {
        let name = c::bind_statement(body).unwrap_or_default();
        let Some(stmt) = self.by_name.get(name).filter(|_| !name.is_empty()).cloned() else {
            return out.forward(c::BIND, body);
        };
        ensure_prepared(registry, &stmt, server, out);
        let portal_len = body.iter().position(|&b| b == 0).unwrap_or(0);
        let after = &body[portal_len + 1 + name.len() + 1..];
        let mut new_body = Vec::with_capacity(body.len() + 16);
        new_body.extend_from_slice(&body[..portal_len + 1]);
        new_body.extend_from_slice(server_name(stmt.id).as_bytes());
        new_body.push(0);
        new_body.extend_from_slice(after);
        out.forward(c::BIND, &new_body);
    }

    /// Describe or Close of a named statement.
    fn statement_target(
        &mut self,
        registry: &StatementIds,
        tag: u8,
        body: &[u8],
        server: &mut ServerConn,
        out: &mut Outgoing,
    ) {
        let name = c::target(body).map(|(_, n)| n).unwrap_or_default();
        if tag == c::CLOSE {
            // The server copy stays for other clients; the client's view forgets it now.
            self.by_name.remove(name);
            return out.answer(Kind::Close, Bytes::from_static(CLOSE_COMPLETE));
        }
        let Some(stmt) = self.by_name.get(name).cloned() else { return out.forward(tag, body) };
        ensure_prepared(registry, &stmt, server, out);
        out.forward(tag, &statement_target(stmt.id));
    }
}

/// The body of a Describe or Close of server statement `id`: `S name \0`.
fn statement_target(id: u64) -> Vec<u8> {
    let mut body = vec![b'S'];
    body.extend_from_slice(server_name(id).as_bytes());
    body.push(0);
    body
}

/// Prepares `stmt` on the connection first if it lacks it; the reply is swallowed.
fn ensure_prepared(registry: &StatementIds, stmt: &Statement, server: &mut ServerConn, out: &mut Outgoing) {
    if server.has_statement(stmt.id) {
        return;
    }
    add_statement(registry, server, stmt.id, out);
    out.inject(Kind::Parse, &stmt.parse, Some(stmt.id));
}

/// Records `id` as prepared on the connection and counts it; closes what the LRU evicts.
fn add_statement(registry: &StatementIds, server: &mut ServerConn, id: u64, out: &mut Outgoing) {
    registry.count_prepare();
    if let Some(evicted) = server.add_statement(id) {
        registry.count_eviction();
        let mut close = BytesMut::new();
        put_message(&mut close, c::CLOSE, &statement_target(evicted));
        out.inject(Kind::Close, &close, None);
    }
}

/// A Parse message for `name` with the rest of a client's Parse body (text and types).
fn parse_message(name: &str, rest: &[u8]) -> Bytes {
    let mut body = Vec::with_capacity(name.len() + 1 + rest.len());
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    body.extend_from_slice(rest);
    let mut out = BytesMut::with_capacity(body.len() + 5);
    put_message(&mut out, c::PARSE, &body);
    out.freeze()
}

/// A `DEALLOCATE` a client sends as SQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deallocate {
    All,
    Name(Vec<u8>),
}

/// Reads `DEALLOCATE [PREPARE] name|ALL [;]`, the whole of a simple query, else `None`.
pub fn deallocate(sql: &[u8]) -> Option<Deallocate> {
    let text = std::str::from_utf8(sql).ok()?.trim().trim_end_matches(';').trim_end();
    let rest = strip_word(text, "deallocate")?;
    let target = strip_word(rest, "prepare").unwrap_or(rest);
    if target.eq_ignore_ascii_case("all") {
        return Some(Deallocate::All);
    }
    let name = match target.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) if !quoted.replace("\"\"", "").contains('"') => quoted.replace("\"\"", "\""),
        Some(_) => return None,
        None if !target.is_empty() && target.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$') => {
            target.to_lowercase()
        }
        None => return None,
    };
    Some(Deallocate::Name(name.into_bytes()))
}

/// `text` without its first word `word` (any case) and the white space after it.
fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let (first, rest) = text.split_once(char::is_whitespace)?;
    first.eq_ignore_ascii_case(word).then(|| rest.trim_start())
}

impl Prepared {
    /// Forgets a statement the client deallocates; `false` if the client never prepared it with
    /// the protocol (then it is a SQL-level PREPARE, which the server itself knows).
    pub fn forget(&mut self, name: &[u8]) -> bool {
        self.by_name.remove(name).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deallocate_forms() {
        assert_eq!(deallocate(b"DEALLOCATE s1"), Some(Deallocate::Name(b"s1".to_vec())));
        assert_eq!(deallocate(b"deallocate prepare \"S 1\";"), Some(Deallocate::Name(b"S 1".to_vec())));
        assert_eq!(deallocate(b"DEALLOCATE ALL"), Some(Deallocate::All));
        assert_eq!(deallocate(b"deallocate Foo"), Some(Deallocate::Name(b"foo".to_vec())));
        assert_eq!(deallocate(b"DEALLOCATE s1; select 1"), None);
        assert_eq!(deallocate(b"select 1"), None);
        assert_eq!(deallocate(b"deallocate /* x */ s1"), None);
    }
}
