//! One stats table with HAProxy's rows and columns; `show stat`, `show
//! info`, Prometheus, the stats page and the final report are views of it.
mod columns;
pub mod counters;
mod csv;
mod info;
mod page;
mod prometheus;
mod servers_state;
mod table;
#[cfg(test)]
mod tests;

pub use counters::{BackendCounters, Counters, FrontendCounters, ServerCounters, XdpCounters};
pub use csv::show_stat;
pub use info::Info;
pub use page::render;
pub use prometheus::exposition;
pub use servers_state::{show_backend, show_servers_state};
pub use table::StatsTable;
