//! The XDP datapath: loading the program, attaching it, reading its maps.
mod error;
mod loader;
mod stats;

pub use error::DatapathError;
pub use loader::{AttachMode, Datapath, XdpModeArg};
pub use stats::{Counter, ProtoCounters};
