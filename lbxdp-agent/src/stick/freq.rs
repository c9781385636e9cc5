//! HAProxy's frequency counters live in `lbxdp_common::freq`, where the XDP
//! program counts with the same code; the stick tables here use them.
pub use lbxdp_common::freq::FreqCtr;
