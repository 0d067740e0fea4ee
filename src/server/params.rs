//! Session parameters as either side holds them: a client what it expects, a server connection
//! what it carries. The SQL that brings a connection to a client's parameters is a pure diff of
//! two sets (PgBouncer's varcache works the same way).

use std::collections::BTreeMap;

/// Reported parameters (the ones ParameterStatus announces) and the others pgsplit sets with
/// `set_config`, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamSet {
    /// By the name the server reports them under.
    pub reported: BTreeMap<String, String>,
    /// Lower-case names, values as the client asked for them.
    pub unreported: BTreeMap<String, String>,
}
