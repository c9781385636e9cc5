//! The XDP datapath: loading the program, attaching it, reading its maps.
mod dsr;
mod error;
mod fib_gen;
mod loader;
mod maps;
pub(crate) mod net;
pub(crate) mod pin;
pub mod plan;
pub(crate) mod ports;
pub(crate) mod rules;
mod stats;
mod sysctl;
mod test_run;

pub use dsr::check as check_dsr;
pub use error::DatapathError;
pub use fib_gen::{FibGeneration, FibWatch};
pub use loader::{AttachMode, Datapath, Sizes, XdpModeArg};
pub use maps::{NatMode, OpenFlows, addr_bytes, nets_change};
pub use stats::{Counter, ProtoCounters};
pub use test_run::TestRunOutcome;
