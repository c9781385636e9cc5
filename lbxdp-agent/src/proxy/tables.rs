//! The proxy's stick tables: one `stick::Table` per `stick-table` line,
//! shared by every thread (a short lock per operation), on one clock.
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard, OnceLock},
    time::Instant,
};

use crate::{
    config::{
        Config,
        stick::{Counter, StickTable},
    },
    stick::{Dump, Read, Select, Table},
};

/// Milliseconds on a monotonic clock that starts far from 0, as HAProxy's
/// `now_ms` (wall-clock based) does: a counter nothing touched yet (period
/// start 0) is then long past, never mistaken for a current period.
pub(crate) fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    (1 << 31) + u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX >> 1)
}

pub(crate) struct TableRt {
    pub(crate) def: StickTable,
    table: Mutex<Table>,
}

impl TableRt {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding it leaves plain counters: still usable.
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn key(&self, ip: IpAddr) -> Option<IpAddr> {
        self.lock().key(ip)
    }

    /// `track-scN`: Some(key) when tracked.
    pub(crate) fn track(&self, ip: IpAddr) -> Option<IpAddr> {
        self.lock().track(ip, now_ms())
    }

    pub(crate) fn release(&self, key: IpAddr) {
        self.lock().release(key, now_ms());
    }

    /// A fetch's value: None when it fails (counter not stored). `IncGpc0`
    /// counts; with `create`, on a new entry if there is none (`src_inc_gpc0`).
    pub(crate) fn counter(&self, key: IpAddr, counter: Counter, create: bool) -> Option<i64> {
        let now = now_ms();
        let mut t = self.lock();
        if counter == Counter::IncGpc0 {
            return if create {
                t.inc_gpc0_creating(key, now)
            } else {
                Some(t.inc_gpc0(key, now))
            };
        }
        match t.read(key, counter, now) {
            Read::NoEntry => Some(0),
            Read::NotStored => None,
            Read::Value(v) => Some(v),
        }
    }

    pub(crate) fn dump(&self) -> Dump {
        let now = now_ms();
        let entries = self.lock().entries(now);
        Dump {
            name: self.def.name.clone(),
            key: self.def.key,
            size: self.def.size,
            store: self.def.store,
            entries,
            now,
        }
    }

    /// Drops what `select` picks and nothing uses; how many were in use.
    pub(crate) fn clear(&self, select: &Select) -> usize {
        let now = now_ms();
        let store = self.def.store;
        self.lock().clear(now, &|k, e| select.picks(&store, k, e, now))
    }
}

/// Every table of a configuration, by name.
#[derive(Default)]
pub(crate) struct Tables {
    list: Vec<Arc<TableRt>>,
    by_name: HashMap<String, Arc<TableRt>>,
}

impl Tables {
    pub(crate) fn new(config: &Config) -> Tables {
        let list: Vec<Arc<TableRt>> = config
            .tables
            .iter()
            .map(|def| {
                Arc::new(TableRt {
                    def: def.clone(),
                    table: Mutex::new(Table::new(def.clone())),
                })
            })
            .collect();
        let by_name = list.iter().map(|t| (t.def.name.clone(), t.clone())).collect();
        Tables { list, by_name }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<TableRt>> {
        self.by_name.get(name)
    }

    pub(crate) fn all(&self) -> &[Arc<TableRt>] {
        &self.list
    }
}
