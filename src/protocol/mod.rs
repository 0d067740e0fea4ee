//! The PostgreSQL wire protocol as pgsplit needs it: framing, the few messages it inspects, and the
//! messages it sends itself. No I/O lives here.

pub mod build;
pub mod frame;
pub mod from_client;
pub mod from_server;
pub mod lsn;
pub mod sqlstate;
pub mod startup;

pub use frame::{Frame, FrameError};
