//! What a transaction leaves behind once it ends: the pins that keep a client on its server
//! connection, and the SETs and pin releases that count only if the transaction ended well
//! (committed, or autocommit without an error). One value instead of six session fields.

use crate::classify::{Pin, SessionChange};
use crate::metrics::Counters;

use super::routing::Inspection;

/// A session's transaction leftovers.
#[derive(Debug, Default)]
pub(crate) struct TxState {
    /// Why the client keeps its server connection between transactions; empty when it does not.
    pins: Vec<Pin>,
    /// Pins the current transaction releases, once it ends well.
    pending_unpins: Vec<Pin>,
    /// The client was pinned once already (logged only the first time).
    pin_logged: bool,
    /// SET, RESET and DISCARD sent in the current transaction; kept only if it ends well.
    pending_sets: Vec<SessionChange>,
    /// The current transaction was rolled back or failed: its session changes are void.
    undone: bool,
    /// The connection's error count when the current transaction began.
    errors_base: u64,
}

impl TxState {
    /// The client is pinned to its server connection.
    pub fn pinned(&self) -> bool {
        !self.pins.is_empty()
    }

    /// Pins the client for each pin in `pins` (counted when the client becomes pinned, logged
    /// the first time ever).
    pub fn pin(&mut self, pins: impl Iterator<Item = Pin>, counters: &Counters) {
        for pin in pins {
            if self.pins.is_empty() {
                counters.pinned(pin);
                if !std::mem::replace(&mut self.pin_logged, true) {
                    tracing::info!(
                        reason = pin.describe(),
                        "client pinned to its server connection until released, DISCARD ALL or disconnect"
                    );
                }
            }
            if !self.pins.contains(&pin) {
                self.pins.push(pin);
            }
        }
    }

    /// DISCARD ALL ran: nothing pins the client any more.
    pub fn unpin_all(&mut self) {
        self.pins.clear();
    }

    /// The transaction and the connection it lived on are gone (its node was deposed): nothing
    /// it changed is kept, and no pin survives the connection.
    pub fn abandon(&mut self) {
        self.pending_sets.clear();
        self.pending_unpins.clear();
        self.pins.clear();
        self.undone = false;
    }

    /// A transaction starts on a connection that has forwarded `errors` errors so far.
    pub fn begin(&mut self, errors: u64) {
        self.errors_base = errors;
    }

    /// Remembers a request's session changes and pin releases until its transaction's fate is
    /// known.
    pub fn note(&mut self, inspection: &Inspection) {
        for class in &inspection.statements {
            if class.rolls_back {
                self.undone = true;
            }
            self.pending_sets.extend(class.session_changes.iter().cloned());
            self.pending_unpins.extend(class.unpins.iter().copied());
        }
    }

    /// Settles a request that ended with ReadyForQuery `status` on a connection with `errors`
    /// errors so far. Returns the session changes to keep: those of a transaction that just
    /// ended well (empty otherwise, and while a transaction is still open).
    pub fn settle(&mut self, status: u8, errors: u64) -> Vec<SessionChange> {
        match status {
            b'E' => self.undone = true,
            b'I' => {
                let ended_well = !self.undone && errors == self.errors_base;
                let sets = std::mem::take(&mut self.pending_sets);
                let released = std::mem::take(&mut self.pending_unpins);
                self.undone = false;
                if ended_well {
                    self.pins.retain(|p| !released.contains(p));
                    return sets;
                }
            }
            _ => {}
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Classifier, ClassifierSettings};

    fn inspection(sql: &str) -> Inspection {
        let classifier = Classifier::new(ClassifierSettings { cache_size: 10, write_functions: Default::default() });
        Inspection { statements: std::iter::once(classifier.classify(sql)).collect(), ..Default::default() }
    }

    #[test]
    fn sets_count_only_when_the_transaction_ends_well() {
        let mut tx = TxState::default();
        tx.begin(0);
        tx.note(&inspection("SET work_mem = '8MB'"));
        assert!(tx.settle(b'T', 0).is_empty(), "still in the transaction");
        assert_eq!(tx.settle(b'I', 0).len(), 1);

        tx.begin(0);
        tx.note(&inspection("SET work_mem = '8MB'"));
        assert!(tx.settle(b'I', 1).is_empty(), "an error in the transaction voids its SETs");

        tx.begin(1);
        tx.note(&inspection("SET work_mem = '8MB'"));
        tx.note(&inspection("ROLLBACK"));
        assert!(tx.settle(b'I', 1).is_empty(), "a rollback voids them");
        tx.begin(1);
        assert!(tx.settle(b'I', 1).is_empty(), "nothing carries over");
    }

    #[test]
    fn a_release_unpins_only_once_its_transaction_ends_well() {
        let counters = Counters::default();
        let mut tx = TxState::default();
        tx.pin([Pin::Listen].into_iter(), &counters);
        assert!(tx.pinned());
        tx.begin(0);
        tx.note(&inspection("UNLISTEN *"));
        tx.settle(b'E', 0);
        tx.settle(b'I', 0);
        assert!(tx.pinned(), "a failed transaction releases nothing");
        tx.note(&inspection("UNLISTEN *"));
        tx.settle(b'I', 0);
        assert!(!tx.pinned());
    }
}
