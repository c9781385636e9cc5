//! Stick tables and their counters, as HAProxy 2.6 keeps them: the pure
//! arithmetic (frequency counters, tracking, expiry, eviction) and the
//! runtime API's view of a table. Both engines count the same way; the
//! proxy keeps its tables here, the XDP datapath mirrors the arithmetic.
pub mod freq;
pub mod show;
pub mod table;

pub use freq::FreqCtr;
pub use show::{Dump, Filter, Op, Select};
pub use table::{Entry, Read, Table};
