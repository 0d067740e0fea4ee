//! The front door: accepting connections (`listener`) and the startup handshake (`startup`),
//! which hands each client to the admin console or to a [`crate::session::Session`].

pub mod listener;
pub mod startup;
