//! Prepared statements across server connections. A client's statement names are its own; on
//! servers each distinct (text, parameter types) gets one pgsplit name (`pgsplit_N`), shared by
//! every client. Unnamed statements (most drivers' default) get one too, so a text the connection
//! has prepared before is neither parsed nor planned again. A request is rewritten on its way
//! out: Parse, Bind, Describe and Close carry the server name; a statement the connection lacks
//! is prepared first, in the same pipeline, and its reply swallowed; a Parse the connection
//! already has, and every Close of a statement pgsplit named, are answered by pgsplit itself.

use std::collections::HashMap;
use std::num::NonZeroU64;
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
use crate::session::routing::Parses;
use crate::state::statements::StatementIds;

mod name;

use name::ServerName;

/// A client statement as servers know it.
#[derive(Debug)]
struct Statement {
    id: u64,
    /// The Parse message that prepares it on a server, under its server name.
    parse: Bytes,
    /// Where its text and parameter types start in `parse` (after the server name), compared
    /// with each unnamed Parse the client sends.
    key_at: usize,
    /// What it does, for routing the Binds that run it.
    class: Arc<Classification>,
    /// The generation of the classifier that made `class`, kept for the unnamed statement
    /// (see [`Prepared::repeated_unnamed`]); `None` for named ones, looked up by name.
    generation: Option<NonZeroU64>,
}

impl Statement {
    fn new(id: u64, rest: &[u8], class: &Arc<Classification>, generation: Option<NonZeroU64>) -> Arc<Self> {
        let parse = parse_message(&ServerName::of(id), rest);
        let key_at = parse.len() - rest.len();
        Arc::new(Statement { id, parse, key_at, class: class.clone(), generation })
    }

    /// Its text and parameter types: the Parse body after the name.
    fn key(&self) -> &[u8] {
        &self.parse[self.key_at..]
    }
}

/// A client's statements: the named ones by client name, and the unnamed one while pgsplit keeps
/// it on servers under its own name.
#[derive(Debug, Default)]
pub struct Prepared {
    by_name: HashMap<Box<[u8]>, Arc<Statement>>,
    unnamed: Option<Arc<Statement>>,
    /// What the current request changed, so it can run again from the start: the named
    /// statements it added, and the statements its Parses found already on the connection
    /// (the ones PostgreSQL may refuse because DDL changed their result type).
    added: Vec<Box<[u8]>>,
    reused: Vec<u64>,
}

impl Prepared {
    /// Whether a request needs rewriting; without statements of pgsplit's naming in play it goes
    /// out untouched. `reuse_unnamed`: unnamed statements are named by pgsplit.
    pub fn touches(&self, batch: &[u8], reuse_unnamed: bool) -> bool {
        let unnamed = self.unnamed.is_some();
        messages(batch).any(|(tag, body)| match tag {
            c::PARSE => reuse_unnamed || body.first().is_some_and(|&b| b != 0),
            c::BIND => c::bind_statement(body).is_some_and(|n| unnamed || !n.is_empty()),
            c::DESCRIBE | c::CLOSE => c::target(body).is_some_and(|(k, n)| k == b'S' && (unnamed || !n.is_empty())),
            c::QUERY => unnamed,
            _ => false,
        })
    }

    /// How the statement the client named `name` was classified, if pgsplit knows it; `""` is the
    /// unnamed statement.
    pub fn class_of(&self, name: &[u8]) -> Option<&Arc<Classification>> {
        let stmt = if name.is_empty() { self.unnamed.as_ref() } else { self.by_name.get(name) };
        stmt.map(|s| &s.class)
    }

    /// The classification of an unnamed Parse (`body`) that sends the client's unnamed statement
    /// again, if the classifier of `generation` made it: then its text needs no classifying.
    /// Drivers that do not name statements send the same text with each execution.
    pub fn repeated_unnamed(&self, body: &[u8], generation: Option<NonZeroU64>) -> Option<&Arc<Classification>> {
        let stmt = self.unnamed.as_ref().filter(|s| s.generation.is_some() && s.generation == generation)?;
        let rest = body.strip_prefix(b"\0")?;
        (stmt.key() == rest).then_some(&stmt.class)
    }

    /// Forgets every statement (DISCARD ALL, DEALLOCATE ALL).
    pub fn clear(&mut self) {
        self.by_name.clear();
        self.unnamed = None;
    }

    /// Forgets a statement the client deallocates; `false` if the client never prepared it with
    /// the protocol (then it is a SQL-level PREPARE, which the server itself knows).
    pub fn forget(&mut self, name: &[u8]) -> bool {
        self.by_name.remove(name).is_some()
    }

    /// A new request starts: nothing of it to undo yet.
    pub fn start_request(&mut self) {
        self.added.clear();
        self.reused.clear();
    }

    /// Whether the request's Parses found statements already on the connection.
    pub fn reused_any(&self) -> bool {
        !self.reused.is_empty()
    }

    /// Undoes what the request did to the client's view, so it can be rewritten and sent again
    /// (it ran nothing); returns the reused statements, which the retry must prepare afresh.
    pub fn undo_request(&mut self) -> Vec<u64> {
        for name in self.added.drain(..) {
            self.by_name.remove(&name);
        }
        std::mem::take(&mut self.reused)
    }

    /// Rewrites a request for `server`: the bytes to send and the replies they owe. `parsed` has
    /// the classification of each Parse in the request, in order. `stale` statements are closed
    /// and forgotten on the connection first, so the request prepares them again.
    pub fn rewrite(
        &mut self,
        registry: &StatementIds,
        batch: &[u8],
        parsed: &Parses,
        server: &mut ServerConn,
        reuse_unnamed: bool,
        stale: &[u64],
    ) -> Outgoing {
        // Outside a transaction, and before anything ran: the request can run again if a
        // reused statement is refused. Inside one (a BEGIN sent in front of it too), unnamed
        // statements go out as they came.
        let mut reuse = reuse_unnamed && server.outside_transaction() && server.settled();
        let mut out = server.outgoing();
        for &id in stale {
            server.drop_statement(id);
            close_on_server(id, &mut out);
        }
        let generation = parsed.generation;
        let mut parsed = parsed.classes.iter();
        let mut skipping = false;
        for whole in whole_messages(batch) {
            let (tag, body) = (whole[0], &whole[5..]);
            if skipping && tag != c::SYNC {
                continue;
            }
            skipping = false;
            match tag {
                c::PARSE => {
                    let class = parsed.next();
                    if body.first() != Some(&0) {
                        skipping = !self.parse(registry, body, class, server, reuse, &mut out);
                    } else if let (true, Some(class)) = (reuse, class) {
                        self.parse_unnamed(registry, body, class, generation, server, &mut out);
                    } else {
                        self.unnamed = None;
                        out.forward(tag, body);
                    }
                }
                c::BIND => self.bind(registry, body, server, &mut out),
                c::DESCRIBE | c::CLOSE if c::target(body).is_some_and(|(k, _)| k == b'S') => {
                    self.statement_target(registry, tag, body, server, &mut out)
                }
                c::QUERY | c::EXECUTE | c::FUNCTION_CALL => {
                    if tag == c::QUERY {
                        // PostgreSQL drops the unnamed statement at a simple Query.
                        self.unnamed = None;
                    }
                    reuse = false;
                    out.forward(tag, body);
                }
                _ => out.forward(tag, body),
            }
        }
        out
    }

    /// A named Parse; `false` when it is refused (the name is taken) and the server would skip to
    /// Sync. `reuse`: the request could run again, so a statement found on the connection counts
    /// as reused.
    fn parse(
        &mut self,
        registry: &StatementIds,
        body: &[u8],
        class: Option<&Arc<Classification>>,
        server: &mut ServerConn,
        reuse: bool,
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
        let stmt = Statement::new(registry.id_for(rest), rest, class, None);
        self.by_name.insert(name.into(), stmt.clone());
        self.added.push(name.into());
        self.prepare_or_reuse(registry, &stmt, server, reuse, out);
        true
    }

    /// An unnamed Parse, outside a transaction: the client's unnamed statement becomes the
    /// server statement of its text (the last one's again when the text repeats and the same
    /// classifier made `class`, without the registry's lock).
    fn parse_unnamed(
        &mut self,
        registry: &StatementIds,
        body: &[u8],
        class: &Arc<Classification>,
        generation: Option<NonZeroU64>,
        server: &mut ServerConn,
        out: &mut Outgoing,
    ) {
        let rest = &body[1..];
        let stmt = match self.unnamed.take() {
            Some(last) if last.key() == rest && last.generation == generation => last,
            _ => Statement::new(registry.id_for(rest), rest, class, generation),
        };
        self.prepare_or_reuse(registry, &stmt, server, true, out);
        self.unnamed = Some(stmt);
    }

    /// Answers a Parse of a statement the connection has; else sends it under its server name.
    fn prepare_or_reuse(
        &mut self,
        registry: &StatementIds,
        stmt: &Statement,
        server: &mut ServerConn,
        reuse: bool,
        out: &mut Outgoing,
    ) {
        if server.has_statement(stmt.id) {
            registry.count_reuse();
            if reuse {
                self.reused.push(stmt.id);
            }
            out.answer(Kind::Parse, Bytes::from_static(PARSE_COMPLETE));
        } else {
            add_statement(registry, server, stmt.id, out);
            out.forward_parse(&stmt.parse, stmt.id);
        }
    }

    /// The statement a Bind, Describe or Close names, if pgsplit named it on servers.
    fn statement(&self, name: &[u8]) -> Option<&Arc<Statement>> {
        match name.is_empty() {
            true => self.unnamed.as_ref(),
            false => self.by_name.get(name),
        }
    }

    fn bind(&self, registry: &StatementIds, body: &[u8], server: &mut ServerConn, out: &mut Outgoing) {
        // A Bind too short to name a statement goes as it came: the server refuses it (08P01).
        let Some((name, stmt)) = c::bind_statement(body).and_then(|name| Some((name, self.statement(name)?))) else {
            return out.forward(c::BIND, body);
        };
        ensure_prepared(registry, stmt, server, out);
        let portal_len = crate::protocol::nul_at(body).unwrap_or(0);
        let after = &body[portal_len + 1 + name.len() + 1..];
        let server_name = ServerName::of(stmt.id);
        out.forward_parts(c::BIND, &[&body[..portal_len + 1], server_name.as_bytes(), b"\0", after]);
    }

    /// Describe or Close of a statement.
    fn statement_target(
        &mut self,
        registry: &StatementIds,
        tag: u8,
        body: &[u8],
        server: &mut ServerConn,
        out: &mut Outgoing,
    ) {
        let name = c::target(body).map(|(_, n)| n).unwrap_or_default();
        let Some(stmt) = self.statement(name).cloned() else { return out.forward(tag, body) };
        if tag == c::CLOSE {
            // The server copy stays for other clients; the client's view forgets it now.
            if name.is_empty() {
                self.unnamed = None;
            } else {
                self.by_name.remove(name);
            }
            return out.answer(Kind::Close, Bytes::from_static(CLOSE_COMPLETE));
        }
        ensure_prepared(registry, &stmt, server, out);
        out.forward_parts(tag, &[b"S", ServerName::of(stmt.id).as_bytes(), b"\0"]);
    }
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
        close_on_server(evicted, out);
    }
}

/// Closes server statement `id`, its reply swallowed.
fn close_on_server(id: u64, out: &mut Outgoing) {
    let mut close = BytesMut::new();
    let mut body = vec![b'S'];
    body.extend_from_slice(ServerName::of(id).as_bytes());
    body.push(0);
    put_message(&mut close, c::CLOSE, &body);
    out.inject(Kind::Close, &close, None);
}

/// A Parse message for `name` with the rest of a client's Parse body (text and types).
fn parse_message(name: &ServerName, rest: &[u8]) -> Bytes {
    let name = name.as_bytes();
    let mut out = BytesMut::with_capacity(5 + name.len() + 1 + rest.len());
    put_message(&mut out, c::PARSE, &[name, b"\0", rest].concat());
    out.freeze()
}

#[cfg(test)]
mod tests;
