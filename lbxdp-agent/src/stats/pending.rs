//! TEMPORARY: placeholders until the stats views land (same session).
use std::{collections::BTreeMap, time::Instant};

use super::Counters;
use crate::{
    config::Config,
    health::{ServerId, ServerState},
    runtime::StatFilter,
};

pub struct StatsTable;
impl StatsTable {
    pub fn build(_: &Config, _: &BTreeMap<ServerId, ServerState>, _: &Counters, _: Instant) -> Self {
        Self
    }
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    pub fn show_stat(&self, _: StatFilter) -> String {
        String::new()
    }
    pub fn servers_state(&self, _: Option<&str>) -> Result<String, String> {
        Ok(String::new())
    }
    pub fn show_backend(&self) -> String {
        String::new()
    }
}
pub struct InfoBase;
impl InfoBase {
    pub fn now(_: &Config, _: &str) -> Self {
        Self
    }
    pub fn info(&self, _: &Counters) -> Info {
        Info
    }
}
pub struct Info;
impl Info {
    pub fn show_info(&self) -> String {
        String::new()
    }
}
pub mod prometheus {
    pub fn render(_: &super::StatsTable, _: &super::Info, _: Option<&crate::stats::XdpCounters>) -> String {
        String::new()
    }
}
pub mod page {
    pub fn render(
        _: &super::StatsTable,
        _: &super::Info,
        _: &crate::config::StatsPage,
        _: bool,
        _: Option<&str>,
    ) -> String {
        String::new()
    }
}
