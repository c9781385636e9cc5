//! The lbxdp agent: loads the XDP balancer, programs it, and reports on it.
pub mod datapath;
pub mod logging;
