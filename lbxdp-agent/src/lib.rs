//! The lbxdp agent: loads the XDP balancer, programs it, and reports on it.
mod agent;
pub mod balancer;
pub mod config;
pub mod config_files;
pub mod datapath;
mod engine;
mod handover;
mod health;
pub mod logging;
pub mod maglev;
mod outside;
mod privileges;
pub mod proxy;
pub mod proxy_mode;
pub mod runtime;
mod signals;
mod stats;
mod syslog;
