//! What a query's SQL text means for routing: read, write, transaction control or session state,
//! plus the statement kind, tables and functions that routing rules match on, and `pgsplit:` hints.
//!
//! Pure: no I/O, no async. The lexer answers alone where the first keyword settles it (INSERT, BEGIN,
//! SET, SHOW …); only queries (SELECT, WITH, VALUES, TABLE, EXPLAIN's and COPY's inner query) go to
//! sqlparser. The text is lexed once, and that pass serves the key, the keyword decision, the pins
//! and DEALLOCATE. Answers are kept in a bounded cache keyed by the text with the literals of its
//! queries and DML replaced (`key.rs` says which literals, and why those alone); a text without
//! literals is looked up before it is lexed. Whatever cannot be understood is
//! [`Intent::Unknown`], which must go to the primary.

mod analysis;
mod analyze;
mod cache;
mod deallocate;
mod functions;
pub(crate) mod hints;
pub(crate) mod key;
pub(crate) mod keyword;
pub(crate) mod lexer;
mod pins;
mod session;
mod simple;
mod statement;
mod walk;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::HashSet;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use crate::protocol::lsn::{format_lsn, parse_lsn};

use cache::Cache;
use functions::FunctionSet;

/// What one statement (or a whole simple query) does, as far as routing cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Only reads: any node that is fresh enough may answer.
    Read,
    /// Changes data, schema or server state, or needs the primary for another reason.
    Write,
    /// BEGIN or START TRANSACTION; `read_only` is `Some` when READ ONLY or READ WRITE was given.
    Begin {
        /// `Some(true)` for READ ONLY, `Some(false)` for READ WRITE, `None` when not said.
        read_only: Option<bool>,
    },
    /// COMMIT, END, ROLLBACK, ABORT, PREPARE TRANSACTION, COMMIT PREPARED, ROLLBACK PREPARED;
    /// `rollback` for ROLLBACK and ABORT, which undo the transaction's SETs.
    EndTransaction {
        /// ROLLBACK or ABORT of the open transaction.
        rollback: bool,
    },
    /// SAVEPOINT, RELEASE [SAVEPOINT], ROLLBACK TO [SAVEPOINT].
    Savepoint,
    /// SET, RESET or DISCARD: the session must remember it and replay it on other connections.
    Session(SessionChange),
    /// Not understood (unknown command, unparseable, or too large to parse): goes to the primary.
    Unknown,
}

impl Intent {
    /// Whether this is BEGIN, the end of a transaction or a savepoint command.
    pub fn is_transaction_control(&self) -> bool {
        matches!(self, Intent::Begin { .. } | Intent::EndTransaction { .. } | Intent::Savepoint)
    }
}

/// A change to session state, with names and values as the server would store them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionChange {
    /// `SET [SESSION|LOCAL] name = value`; the value is unquoted (`'primary'` → `primary`), list
    /// elements are joined with `", "`. Special forms map to their settings: TIME ZONE → `timezone`,
    /// NAMES → `client_encoding`, SCHEMA → `search_path`, ROLE → `role`, SESSION AUTHORIZATION →
    /// `session_authorization`, XML OPTION → `xmloption`. SET TRANSACTION and SET CONSTRAINTS are
    /// reported as `transaction` and `constraints` with `local: true` and their words as the value;
    /// SET SESSION CHARACTERISTICS AS TRANSACTION as `session_characteristics`.
    Set {
        /// Setting name: lowercase unless it was quoted; dotted for custom settings (`pgsplit.route`).
        name: String,
        /// The value as text, without quotes.
        value: String,
        /// SET LOCAL: lasts only until the end of the current transaction.
        local: bool,
    },
    /// `RESET name`, or `SET name TO DEFAULT` outside SET LOCAL.
    Reset {
        /// Setting name, normalised as in [`SessionChange::Set`].
        name: String,
    },
    /// `RESET ALL`.
    ResetAll,
    /// `DISCARD ALL | PLANS | SEQUENCES | TEMP`.
    Discard(DiscardKind),
}

/// What a DISCARD statement throws away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscardKind {
    /// DISCARD ALL: every kind of session state.
    All,
    /// DISCARD PLANS: cached query plans.
    Plans,
    /// DISCARD SEQUENCES: cached sequence state (`currval`, `lastval`).
    Sequences,
    /// DISCARD TEMP or TEMPORARY: temporary tables.
    Temp,
}

/// The family of a statement, for routing rules and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatementKind {
    /// SELECT, VALUES, TABLE, WITH … SELECT.
    Select,
    /// INSERT, also behind WITH.
    Insert,
    /// UPDATE, also behind WITH.
    Update,
    /// DELETE, also behind WITH.
    Delete,
    /// MERGE.
    Merge,
    /// Schema and privilege changes: CREATE, ALTER, DROP, TRUNCATE, GRANT, SELECT INTO …
    Ddl,
    /// COPY in either direction.
    Copy,
    /// CALL of a procedure.
    Call,
    /// DO block.
    Do,
    /// EXPLAIN, with or without ANALYZE.
    Explain,
    /// SHOW.
    Show,
    /// SET, RESET, DISCARD.
    Set,
    /// Transaction control: BEGIN, COMMIT, ROLLBACK, SAVEPOINT …
    Transaction,
    /// Other utility commands: VACUUM, LOCK, LISTEN, PREPARE, EXECUTE, CHECKPOINT …
    Utility,
    /// Empty queries and commands not recognised.
    Other,
}

impl StatementKind {
    /// The kind's name, as rules match on it (`kind = "select"`).
    pub fn name(self) -> &'static str {
        match self {
            StatementKind::Select => "select",
            StatementKind::Insert => "insert",
            StatementKind::Update => "update",
            StatementKind::Delete => "delete",
            StatementKind::Merge => "merge",
            StatementKind::Ddl => "ddl",
            StatementKind::Copy => "copy",
            StatementKind::Call => "call",
            StatementKind::Do => "do",
            StatementKind::Explain => "explain",
            StatementKind::Show => "show",
            StatementKind::Set => "set",
            StatementKind::Transaction => "transaction",
            StatementKind::Utility => "utility",
            StatementKind::Other => "other",
        }
    }
}

/// Where a query should go, as a `pgsplit: route=…` hint, `SET pgsplit.route` or a routing rule's
/// `route` asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    /// `primary`.
    Primary,
    /// `replica`.
    Replica,
    /// `any`: no preference.
    Any,
}

impl RouteTarget {
    /// Every target, in the order messages list them.
    pub const ALL: [RouteTarget; 3] = [RouteTarget::Primary, RouteTarget::Replica, RouteTarget::Any];

    /// The spelling in hints, settings and the config file.
    pub fn name(self) -> &'static str {
        match self {
            RouteTarget::Primary => "primary",
            RouteTarget::Replica => "replica",
            RouteTarget::Any => "any",
        }
    }

    /// Reads a target in any ASCII case (`Replica`, `ANY`), as hints and `SET pgsplit.route` take it.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(text))
    }
}

/// Routing hints found in the query's comments (`/* pgsplit: route=replica min_lsn=16/B374D848 */`).
///
/// When several comments disagree the strictest wins: `primary` over the others (otherwise the first
/// route given), and the highest LSN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hints {
    /// The requested node, if any comment asked for one.
    pub route: Option<RouteTarget>,
    /// A WAL position a replica must have replayed before it may answer.
    pub min_lsn: Option<u64>,
}

/// What a query text means for routing; shared by every session that sends the same text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    /// The dominant intent: `Unknown` if any statement is unknown, else `Write` if any writes, else
    /// `Read` if any reads, else the first statement's (transaction control or session change).
    /// An empty query (no statement at all) is `Read`.
    pub intent: Intent,
    /// Must run on the primary: a write or unknown statement, a BEGIN that is not READ ONLY or asks
    /// for SERIALIZABLE, SET TRANSACTION READ WRITE/SERIALIZABLE, or two-phase commit commands.
    /// COMMIT, ROLLBACK and savepoints follow whatever transaction is open and do not set it.
    pub writes: bool,
    /// The kind of the statement that gave `intent` (the first such statement).
    pub kind: StatementKind,
    /// Tables referenced, normalised as PostgreSQL folds names (lowercase unless quoted), `schema.table`
    /// when written qualified; in order of first appearance. For statements the lexer decides alone
    /// (INSERT, UPDATE, DELETE, MERGE, TRUNCATE, COPY, LOCK) only the target tables are listed.
    /// Which names a routing rule's `tables` match is decided in `route::rules`.
    pub tables: Vec<String>,
    /// Functions called, normalised and unqualified. For statements the lexer decides alone only
    /// the side-effecting ones are listed.
    pub functions: Vec<String>,
    /// `pgsplit:` comment hints.
    pub hints: Hints,
    /// Number of non-empty statements in the text.
    pub statements: usize,
    /// Whether any statement is BEGIN, COMMIT, ROLLBACK, a savepoint command or two-phase commit.
    pub has_transaction_control: bool,
    /// Whether any statement is ROLLBACK or ABORT of the open transaction, which voids the
    /// transaction's SETs (in a multi-statement text the intent alone does not show it).
    pub rolls_back: bool,
    /// Every SET, RESET and DISCARD in the text, in order.
    pub session_changes: Vec<SessionChange>,
    /// What in the text ties the session to its server connection, in order.
    pub pins: Vec<Pin>,
    /// Pins the text releases entirely (`UNLISTEN *`, `pg_advisory_unlock_all()` …), in order.
    pub unpins: Vec<Pin>,
    /// What the text drops when it is exactly one `DEALLOCATE [PREPARE] name|ALL`, which the
    /// session may answer itself.
    pub deallocates: Option<Deallocation>,
}

/// The statement a lone SQL `DEALLOCATE` drops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deallocation {
    /// `DEALLOCATE ALL`.
    All,
    /// `DEALLOCATE name`: the name as PostgreSQL folds it (lowercase unless quoted).
    Name(String),
}

/// Why a statement ties a client to its server connection in transaction pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pin {
    Listen,
    /// SQL-level PREPARE: its EXECUTE and DEALLOCATE need the same connection.
    SqlPrepare,
    AdvisoryLock,
    TempTable,
    HoldCursor,
    PreparedTransaction,
}

impl Pin {
    /// What pins, in words, for messages and logs.
    pub fn describe(self) -> &'static str {
        match self {
            Pin::Listen => "LISTEN",
            Pin::SqlPrepare => "SQL PREPARE",
            Pin::AdvisoryLock => "a session advisory lock",
            Pin::TempTable => "a temporary table",
            Pin::HoldCursor => "a cursor WITH HOLD",
            Pin::PreparedTransaction => "PREPARE TRANSACTION",
        }
    }
}

/// How a [`Classifier`] is set up; built from the config and the monitor's function list.
#[derive(Clone, Debug, Default)]
pub struct ClassifierSettings {
    /// How many parsed query texts to remember; 0 turns the cache off.
    pub cache_size: usize,
    /// Extra functions whose calls make a query a write: lowercase, `name` or `schema.name`
    /// (configured ones and user functions the monitor finds VOLATILE).
    pub write_functions: HashSet<String>,
}

/// Counters of the classification cache, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Texts answered from the cache, or from what it answered before (a session's unnamed
    /// statement sent again).
    pub hits: u64,
    /// Texts the cache could not answer (then cached, unless over 1 MiB).
    pub misses: u64,
    /// Texts the lexer decided alone that hold values which count (`SET a = 1`, `EXPLAIN
    /// (ANALYZE 0) DELETE …`): cheap, and never cached, as their values vary.
    pub lexed: u64,
    /// Texts in the cache now.
    pub entries: usize,
}

thread_local! {
    /// Where each thread writes a text's cache key: keys are built for every statement, and
    /// allocating one each time would cost more than the lookup.
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Largest key buffer a thread keeps between texts; one made for a huge text is let go.
const KEY_BUFFER_KEPT: usize = 64 << 10;

/// Turns SQL text into a [`Classification`]; one per database, shared by its sessions.
pub struct Classifier {
    functions: FunctionSet,
    cache: Cache,
    /// See [`Classifier::generation`].
    generation: Option<NonZeroU64>,
}

/// The generation the next classifier built takes.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

impl Classifier {
    /// Builds a classifier with its cache and extra write functions.
    pub fn new(settings: ClassifierSettings) -> Self {
        let cache = Cache::new(settings.cache_size);
        let generation = cache.enabled().then(|| NEXT_GENERATION.fetch_add(1, Ordering::Relaxed));
        Classifier {
            functions: FunctionSet::new(&settings.write_functions),
            cache,
            generation: generation.and_then(NonZeroU64::new),
        }
    }

    /// Tells this classifier from every other the process builds (a reload, or write functions
    /// the monitor learns, build another): a session may keep a classification beside its
    /// statement and use it again for the same text while the classifier that made it is the
    /// one in use. `None` with the cache off, when nothing is kept.
    pub fn generation(&self) -> Option<NonZeroU64> {
        self.generation
    }

    /// Counts a text a session answered from the classification it kept (see
    /// [`Classifier::generation`]) as a cache hit: the cache's counters say how many texts
    /// were classified again.
    pub fn count_kept(&self) {
        self.cache.count_hit();
    }

    /// Classifies one simple-query or Parse text. Never fails: what is not understood comes back as
    /// [`Intent::Unknown`] with `writes` set.
    pub fn classify(&self, sql: &str) -> Arc<Classification> {
        let cacheable = self.cache.enabled() && key::cacheable(sql);
        // A text whose key is itself (it has no literal to replace) is found without lexing it.
        if let Some(hit) = cacheable.then(|| self.cache.get(sql)).flatten() {
            return hit;
        }
        KEY.with_borrow_mut(|buf| {
            // One statement with literals has its key after one lexer pass, without the full cut.
            let quick = if cacheable { key::quick(sql, buf) } else { None };
            if let Some(hit) = (quick == Some(true)).then(|| self.cache.get(buf)).flatten() {
                return hit;
            }
            let mut split = lexer::Split::default();
            split.cut(sql);
            let literals = key::write(&split, buf);
            let key = cacheable.then_some(if literals.replaced { buf.as_str() } else { sql });
            // A key the quick pass left to the full cut is looked up now.
            if let Some(hit) = key.filter(|_| literals.replaced && quick.is_none()).and_then(|k| self.cache.get(k)) {
                return hit;
            }
            let (classification, parsed) = analyze::classify_text(&split, &self.functions);
            let classification = Arc::new(classification);
            // Values in session commands (`SET a = 1`) vary; kept, each would crowd out the rest.
            if parsed || !literals.kept {
                self.cache.put(key, &classification);
            } else {
                self.cache.count_lexed();
            }
            if buf.capacity() > KEY_BUFFER_KEPT {
                *buf = String::new();
            }
            classification
        })
    }

    /// The cache's counters so far.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }
}
