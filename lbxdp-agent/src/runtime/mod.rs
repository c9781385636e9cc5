//! HAProxy's runtime API: the stats socket and the stats page's actions.
pub mod cli;
pub mod command;
pub mod http;
pub mod socket;

pub use command::{AdminState, Command, ForcedHealth, Request, StatFilter, Weight};
