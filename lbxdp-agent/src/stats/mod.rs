//! One stats table with HAProxy's rows and columns; `show stat`, `show
//! info`, Prometheus, the stats page and the final report are views of it.
pub mod counters;

pub use counters::{BackendCounters, Counters, FrontendCounters, ServerCounters, XdpCounters};
mod pending;
pub use pending::{Info, InfoBase, StatsTable, page, prometheus};
