//! The client side: accepting connections, the startup handshake and authentication, and the
//! session that carries each request to a server connection and the replies back.

pub mod auth;
pub mod cancel;
pub mod dispatch;
pub mod error;
pub mod listener;
pub mod logging;
pub mod misroute;
pub mod params;
pub mod pause;
pub mod prepared;
pub mod registry;
pub mod request;
pub mod routing;
pub mod scram;
pub mod session;
pub mod startup;

pub use error::ClientError;
