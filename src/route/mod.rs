//! Where a request goes. The router is pure and returns a [`Route`]; later stages never look at the
//! SQL again. Until replica routing lands, every request goes to the primary.

/// The node a request is sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// The database's primary.
    Primary,
    /// The database's replica with this index in its `replicas` list.
    Replica(usize),
}

/// Why a request took its route; counted per decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Replica routing is not enabled: everything goes to the primary.
    PrimaryOnly,
}

/// Chooses the node for the next request of a session.
pub fn route() -> (Route, Reason) {
    (Route::Primary, Reason::PrimaryOnly)
}
