//! The lbxdp agent: loads the XDP balancer, programs it, and reports on it.
pub mod agent;
pub mod balancer;
pub mod config;
pub mod config_files;
pub mod datapath;
pub mod engine;
mod handover;
pub mod health;
pub mod logging;
pub mod maglev;
mod outside;
mod privileges;
pub mod proxy;
pub mod proxy_mode;
pub mod runtime;
pub mod signals;
pub mod stats;
pub mod syslog;
