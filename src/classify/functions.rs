//! Functions whose call makes a query a write: built-ins with side effects or that only work on the
//! primary, plus the functions the config and the monitor add.
//!
//! Volatile built-ins without side effects (`random`, `now`, `clock_timestamp`, `pg_sleep`,
//! `gen_random_uuid` …) stay reads. `currval` and `lastval` are writes because they need the
//! session's `nextval` on the same node; `setseed` and `set_config` change session state.

use std::collections::{HashMap, HashSet};

/// Built-ins that are writes, by unqualified lowercase name; sorted for binary search.
const BUILTIN: &[&str] = &[
    "currval",
    "lastval",
    "lowrite",
    "nextval",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_cancel_backend",
    "pg_copy_logical_replication_slot",
    "pg_copy_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_create_physical_replication_slot",
    "pg_create_restore_point",
    "pg_current_wal_flush_lsn",
    "pg_current_wal_insert_lsn",
    "pg_current_wal_lsn",
    "pg_current_xact_id",
    "pg_current_xact_id_if_assigned",
    "pg_current_xlog_flush_location",
    "pg_current_xlog_insert_location",
    "pg_current_xlog_location",
    "pg_drop_replication_slot",
    "pg_import_system_collations",
    "pg_logical_emit_message",
    "pg_logical_slot_get_binary_changes",
    "pg_logical_slot_get_changes",
    "pg_notify",
    "pg_promote",
    "pg_reload_conf",
    "pg_replication_slot_advance",
    "pg_rotate_logfile",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_switch_wal",
    "pg_switch_xlog",
    "pg_terminate_backend",
    "pg_wal_replay_pause",
    "pg_wal_replay_resume",
    "pg_xlog_replay_pause",
    "pg_xlog_replay_resume",
    "set_config",
    "setseed",
    "setval",
    "txid_current",
    "txid_current_if_assigned",
];

/// Families of built-ins that are writes: large objects, advisory locks (taking and releasing),
/// statistics resets, replication origins, dblink (remote execution and named connections) and
/// adminpack's file functions.
const BUILTIN_PREFIXES: &[&str] =
    &["dblink", "lo_", "pg_advisory_", "pg_file_", "pg_replication_origin_", "pg_stat_reset", "pg_try_advisory_"];

/// Whether a built-in function (unqualified lowercase name) makes a query a write.
pub(crate) fn is_side_effecting(name: &str) -> bool {
    BUILTIN.binary_search(&name).is_ok() || BUILTIN_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The built-ins plus the caller's write functions, matched with or without a schema.
#[derive(Debug, Default)]
pub(crate) struct FunctionSet {
    /// Entries given without a schema: they match a call in any schema.
    bare: HashSet<String>,
    /// Entries given as `schema.name`, by name: they match a call in that schema, or unqualified.
    qualified: HashMap<String, HashSet<String>>,
}

impl FunctionSet {
    /// Builds the set from `name` and `schema.name` entries; case and surrounding space are ignored.
    pub fn new(extra: &HashSet<String>) -> Self {
        let mut set = FunctionSet::default();
        for entry in extra {
            let entry = entry.trim().to_lowercase();
            match entry.rsplit_once('.') {
                Some((schema, name)) => {
                    set.qualified.entry(name.to_string()).or_default().insert(schema.to_string());
                }
                None if !entry.is_empty() => {
                    set.bare.insert(entry);
                }
                None => {}
            }
        }
        set
    }

    /// Whether a call of `name` (normalised, `schema` if written) makes a query a write.
    pub fn is_write(&self, schema: Option<&str>, name: &str) -> bool {
        is_side_effecting(name)
            || self.bare.contains(name)
            || self.qualified.get(name).is_some_and(|schemas| schema.is_none_or(|s| schemas.contains(s)))
    }
}
