//! Session parameters as either side holds them: a client what it expects, a server connection
//! what it carries. The SQL that brings a connection to a client's parameters is a pure diff of
//! two sets (PgBouncer's varcache works the same way).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;

/// The reported parameters, shared: thousands of clients of one driver report the same ones, and
/// a change (`Arc::make_mut`) copies only the changer's.
pub type Reported = Arc<BTreeMap<String, String>>;

/// Reported parameters (the ones ParameterStatus announces) and the others pgsplit sets with
/// `set_config`, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamSet {
    /// By the name the server reports them under.
    pub reported: Reported,
    /// Lower-case names, values as the client asked for them.
    pub unreported: BTreeMap<String, String>,
}

/// One shared copy of each distinct set of reported parameters that logged-in clients hold, so
/// an idle client costs a pointer for them rather than a map of its own.
#[derive(Default)]
pub struct ParamInterner {
    sets: Mutex<HashSet<Reported>>,
}

/// Sets kept before the ones no client holds any more are dropped.
const INTERNED_BEFORE_SWEEP: usize = 256;

impl ParamInterner {
    /// The shared copy of `set`.
    pub fn intern(&self, set: BTreeMap<String, String>) -> Reported {
        let mut sets = self.sets.lock();
        if let Some(shared) = sets.get(&set) {
            return shared.clone();
        }
        if sets.len() >= INTERNED_BEFORE_SWEEP {
            sets.retain(|s| Arc::strong_count(s) > 1);
        }
        let shared = Arc::new(set);
        sets.insert(shared.clone());
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_sets_share_one_copy_and_unheld_ones_are_swept() {
        let interner = ParamInterner::default();
        let set = |v: &str| BTreeMap::from([("application_name".to_string(), v.to_string())]);
        let a = interner.intern(set("app"));
        let b = interner.intern(set("app"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &interner.intern(set("other"))));
        for i in 0..INTERNED_BEFORE_SWEEP * 2 {
            drop(interner.intern(set(&i.to_string())));
        }
        assert!(interner.sets.lock().len() <= INTERNED_BEFORE_SWEEP);
        assert!(Arc::ptr_eq(&a, &interner.intern(set("app"))), "a held set survives the sweeps");
    }
}
