//! The PostgreSQL wire protocol as pgsplit needs it: framing, the few messages it inspects, and the
//! messages it sends itself. No I/O lives here.

pub(crate) mod build;
pub mod frame;
pub(crate) mod from_client;
pub(crate) mod from_server;
pub(crate) mod lsn;
pub(crate) mod sqlstate;
pub(crate) mod startup;

pub use frame::{Frame, FrameError};
