//! One stick table's entries, counted as HAProxy 2.6 counts them
//! (src/stick_table.c, include/haproxy/stream.h, session.h):
//! - tracking (`track-scN`) creates the entry if needed and, at once, adds
//!   one to conn_cur and conn_cnt and to the conn_rate counter, and touches it
//!   (`stream_start_counters`);
//! - the connection's end takes one from conn_cur and touches it again when
//!   conn_cur is stored (`session_store_counters`), then drops the entry if
//!   it has expired and nothing uses it;
//! - an entry expires `expire` after its last touch, never while a
//!   connection tracks it;
//! - a full table makes room by dropping the (size/256)+1 least recently
//!   touched entries nothing uses (`__stktable_trash_oldest`), or, with
//!   `nopurge`, refuses the new one.
//!
//! Pure: the caller gives the time (`now`, in ms on a monotonic clock).
use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use super::freq::FreqCtr;
use crate::config::stick::{Counter, StickKey, StickTable, Store};

/// One key's data. Counters not in the table's `store` stay 0 and are never shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entry {
    pub gpc0: u32,
    pub gpc0_rate: FreqCtr,
    pub conn_cnt: u32,
    pub conn_rate: FreqCtr,
    pub conn_cur: u32,
    /// Connections tracking it now (HAProxy's ref_cnt): it can't go meanwhile.
    pub refs: u32,
    /// When it expires (last touch + expire; the last touch without expire).
    pub expire: u64,
    /// Order of the last touch: the expiry and eviction queue's key.
    pub(crate) seq: u64,
    /// In the queue (an entry tracked when it expired leaves it until released).
    pub(crate) queued: bool,
    /// A stable identity for `show table`'s first column.
    pub id: u64,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub def: StickTable,
    entries: BTreeMap<IpAddr, Entry>,
    /// (last touch order, key), oldest first. Touches come in time order, so
    /// this is also the expiry order.
    queue: BTreeSet<(u64, IpAddr)>,
    seq: u64,
    ids: u64,
}

/// A counter's value for a fetch, as HAProxy's sample fetch gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// No such entry: the `src_*` fetches read 0.
    NoEntry,
    /// The table doesn't store that counter: the fetch fails.
    NotStored,
    Value(i64),
}

impl Table {
    pub fn new(def: StickTable) -> Table {
        Table {
            def,
            entries: BTreeMap::new(),
            queue: BTreeSet::new(),
            seq: 0,
            ids: 0,
        }
    }

    /// Entries now (after expiring what is due).
    pub fn used(&mut self, now: u64) -> usize {
        self.purge(now);
        self.entries.len()
    }

    /// The table's key for an address (`smp_to_stkey`): an `ip` table takes
    /// IPv6 addresses only when IPv4-mapped, an `ipv6` table maps IPv4 ones.
    pub fn key(&self, ip: IpAddr) -> Option<IpAddr> {
        match (self.def.key, ip) {
            (StickKey::Ipv4, IpAddr::V4(_)) | (StickKey::Ipv6, IpAddr::V6(_)) => Some(ip),
            (StickKey::Ipv4, IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4),
            (StickKey::Ipv6, IpAddr::V4(v4)) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
        }
    }

    fn expire_ms(&self) -> u64 {
        self.def.expire_ms.map_or(0, u64::from)
    }

    /// `stktable_touch_local`: a new expiry date and a place at the queue's end.
    fn touch(&mut self, key: IpAddr, now: u64) {
        self.seq += 1;
        let (seq, expire) = (self.seq, now + self.expire_ms());
        if let Some(e) = self.entries.get_mut(&key) {
            if e.queued {
                self.queue.remove(&(e.seq, key));
            }
            e.seq = seq;
            e.expire = expire;
            e.queued = true;
            self.queue.insert((seq, key));
        }
    }

    fn remove(&mut self, key: IpAddr) {
        if let Some(e) = self.entries.remove(&key)
            && e.queued
        {
            self.queue.remove(&(e.seq, key));
        }
    }

    /// HAProxy's expiry task: drops the entries whose date passed, unless
    /// tracked (those leave the queue and are looked at again when released).
    pub fn purge(&mut self, now: u64) {
        if self.def.expire_ms.is_none() {
            return;
        }
        while let Some(&(seq, key)) = self.queue.first() {
            let Some(e) = self.entries.get_mut(&key) else {
                self.queue.remove(&(seq, key));
                continue;
            };
            if e.expire > now {
                break;
            }
            self.queue.remove(&(seq, key));
            if e.refs > 0 {
                e.queued = false;
            } else {
                self.entries.remove(&key);
            }
        }
    }

    /// `__stktable_trash_oldest`: drops up to `batch` least recently touched
    /// entries nothing uses, looking at no more than twice that many.
    fn trash_oldest(&mut self, batch: usize) -> usize {
        let mut dropped = 0;
        let candidates: Vec<(u64, IpAddr)> = self.queue.iter().take(batch * 2).copied().collect();
        for (_, key) in candidates {
            if dropped == batch {
                break;
            }
            if self.entries.get(&key).is_some_and(|e| e.refs == 0) {
                self.remove(key);
                dropped += 1;
            }
        }
        dropped
    }

    /// `stktable_get_entry`: the entry, created if needed (None: the table
    /// is full and nothing could go).
    fn get_or_create(&mut self, key: IpAddr, now: u64) -> Option<&mut Entry> {
        self.purge(now);
        if !self.entries.contains_key(&key) {
            let size = self.def.size as usize;
            if self.entries.len() >= size && (self.def.nopurge || self.trash_oldest(size / 256 + 1) == 0) {
                return None;
            }
            self.ids += 1;
            self.entries.insert(
                key,
                Entry {
                    id: self.ids,
                    ..Entry::default()
                },
            );
            self.touch(key, now);
        }
        self.entries.get_mut(&key)
    }

    /// `track-scN`: the connection from `ip` starts being counted here.
    /// Some(key): tracked, to be [`Table::release`]d when the connection ends.
    pub fn track(&mut self, ip: IpAddr, now: u64) -> Option<IpAddr> {
        let key = self.key(ip)?;
        let store = self.def.store;
        let tick = now as u32;
        let e = self.get_or_create(key, now)?;
        e.refs += 1;
        if store.conn_cur {
            e.conn_cur = e.conn_cur.wrapping_add(1);
        }
        if store.conn_cnt {
            e.conn_cnt = e.conn_cnt.wrapping_add(1);
        }
        if let Some(p) = store.conn_rate {
            e.conn_rate.update(tick, p, 1);
        }
        self.touch(key, now);
        Some(key)
    }

    /// The tracking connection ended.
    pub fn release(&mut self, key: IpAddr, now: u64) {
        let store = self.def.store;
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        e.refs = e.refs.saturating_sub(1);
        if store.conn_cur {
            e.conn_cur = e.conn_cur.saturating_sub(1);
            self.touch(key, now);
        }
        // `stksess_kill_if_expired`.
        if let Some(e) = self.entries.get_mut(&key)
            && e.refs == 0
        {
            if self.def.expire_ms.is_some() && e.expire <= now {
                self.remove(key);
            } else if !e.queued {
                e.queued = true;
                self.queue.insert((e.seq, key));
            }
        }
    }

    /// `sc-inc-gpc0` and the `*_inc_gpc0` fetches on an existing entry:
    /// gpc0_rate then gpc0 go up by one if stored, and the entry is touched.
    /// The value is gpc0's, else the rate's current count, else 0.
    pub fn inc_gpc0(&mut self, key: IpAddr, now: u64) -> i64 {
        let store = self.def.store;
        let Some(e) = self.entries.get_mut(&key) else {
            return 0;
        };
        let mut value = 0;
        if let Some(p) = store.gpc0_rate {
            value = i64::from(e.gpc0_rate.update(now as u32, p, 1));
        }
        if store.gpc0 {
            e.gpc0 = e.gpc0.wrapping_add(1);
            value = i64::from(e.gpc0);
        }
        if store.gpc0 || store.gpc0_rate.is_some() {
            self.touch(key, now);
        }
        value
    }

    /// `src_inc_gpc0`: as [`Table::inc_gpc0`], creating the entry first.
    /// None: the address isn't a key of this table (the fetch fails).
    pub fn inc_gpc0_creating(&mut self, ip: IpAddr, now: u64) -> Option<i64> {
        let key = self.key(ip)?;
        if self.get_or_create(key, now).is_none() {
            return Some(0);
        }
        Some(self.inc_gpc0(key, now))
    }

    /// A counter of the entry for `key`, for the fetches that only read.
    pub fn read(&mut self, key: IpAddr, counter: Counter, now: u64) -> Read {
        self.purge(now);
        let Some(e) = self.entries.get(&key) else {
            return Read::NoEntry;
        };
        match value(&self.def.store, e, counter, now) {
            Some(v) => Read::Value(v),
            None => Read::NotStored,
        }
    }

    /// Every entry, by key, with `now`'s values (`show table`).
    pub fn entries(&mut self, now: u64) -> Vec<(IpAddr, Entry)> {
        self.purge(now);
        self.entries.iter().map(|(k, e)| (*k, *e)).collect()
    }

    /// The entry for `key` (`show table ... key K`).
    pub fn entry(&mut self, key: IpAddr, now: u64) -> Option<Entry> {
        self.purge(now);
        self.entries.get(&key).copied()
    }

    /// `clear table`: drops the entries `pick` selects that nothing uses;
    /// returns how many it could not (in use).
    pub fn clear(&mut self, now: u64, pick: &dyn Fn(IpAddr, &Entry) -> bool) -> usize {
        self.purge(now);
        let chosen: Vec<(IpAddr, u32)> = self
            .entries
            .iter()
            .filter(|(k, e)| pick(**k, e))
            .map(|(k, e)| (*k, e.refs))
            .collect();
        let mut busy = 0;
        for (k, refs) in chosen {
            if refs == 0 {
                self.remove(k);
            } else {
                busy += 1;
            }
        }
        busy
    }
}

/// A stored counter's value now; None when the table doesn't store it.
pub fn value(store: &Store, e: &Entry, counter: Counter, now: u64) -> Option<i64> {
    let tick = now as u32;
    match counter {
        Counter::ConnCur => store.conn_cur.then_some(i64::from(e.conn_cur)),
        Counter::ConnCnt => store.conn_cnt.then_some(i64::from(e.conn_cnt)),
        Counter::ConnRate => store.conn_rate.map(|p| i64::from(e.conn_rate.read(tick, p))),
        Counter::Gpc0 => store.gpc0.then_some(i64::from(e.gpc0)),
        Counter::Gpc0Rate => store.gpc0_rate.map(|p| i64::from(e.gpc0_rate.read(tick, p))),
        // Incrementing is `Table::inc_gpc0`'s; it never fails for want of storage.
        Counter::IncGpc0 => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    fn table(size: u32, expire_ms: Option<u32>, store: Store) -> Table {
        Table::new(StickTable {
            name: "t".into(),
            key: StickKey::Ipv4,
            size,
            expire_ms,
            store,
            nopurge: false,
            origin: Origin::new("t.cfg", 1),
        })
    }

    const ALL: Store = Store {
        gpc0: true,
        gpc0_rate: Some(10_000),
        conn_cnt: true,
        conn_rate: Some(10_000),
        conn_cur: true,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const T0: u64 = 1 << 30;

    #[test]
    fn tracking_counts_at_once_and_the_end_gives_conn_cur_back() {
        let mut t = table(100, Some(30_000), ALL);
        let a = ip("198.18.0.2");
        let k = t.track(a, T0).unwrap_or_else(|| panic!("tracked"));
        t.track(a, T0 + 1);
        assert_eq!(t.read(k, Counter::ConnCur, T0 + 2), Read::Value(2));
        assert_eq!(t.read(k, Counter::ConnCnt, T0 + 2), Read::Value(2));
        assert_eq!(t.read(k, Counter::ConnRate, T0 + 2), Read::Value(2));
        assert_eq!(t.entry(k, T0 + 2).map(|e| e.refs), Some(2));
        t.release(k, T0 + 3);
        t.release(k, T0 + 4);
        assert_eq!(t.read(k, Counter::ConnCur, T0 + 5), Read::Value(0));
        assert_eq!(t.read(k, Counter::ConnCnt, T0 + 5), Read::Value(2));
        assert_eq!(t.read(ip("198.18.0.3"), Counter::ConnCur, T0), Read::NoEntry);
    }

    #[test]
    fn entries_expire_after_their_last_touch_unless_tracked() {
        let mut t = table(100, Some(1_000), ALL);
        let (a, b) = (ip("198.18.0.2"), ip("198.18.0.3"));
        let ka = t.track(a, T0).unwrap_or_else(|| panic!("tracked"));
        let kb = t.track(b, T0).unwrap_or_else(|| panic!("tracked"));
        t.release(kb, T0 + 500);
        // b was touched at its release: it lives until T0 + 1500; a is tracked.
        assert_eq!(t.used(T0 + 1_400), 2);
        assert_eq!(t.used(T0 + 1_500), 1);
        assert_eq!(t.used(T0 + 10_000), 1);
        // a's release touches it (conn_cur is stored): another second.
        t.release(ka, T0 + 10_000);
        assert_eq!(t.used(T0 + 10_999), 1);
        assert_eq!(t.used(T0 + 11_000), 0);
    }

    #[test]
    fn without_conn_cur_the_release_of_an_expired_entry_drops_it() {
        let store = Store { conn_cur: false, ..ALL };
        let mut t = table(100, Some(1_000), store);
        let k = t.track(ip("198.18.0.2"), T0).unwrap_or_else(|| panic!("tracked"));
        assert_eq!(t.read(k, Counter::ConnCur, T0), Read::NotStored);
        t.release(k, T0 + 5_000);
        assert_eq!(t.used(T0 + 5_000), 0);
    }

    #[test]
    fn a_full_table_drops_its_least_recently_touched_unused_entries() {
        let mut t = table(3, None, ALL);
        let keys: Vec<IpAddr> = (1..=3)
            .map(|i| {
                t.track(IpAddr::from([10, 0, 0, i]), T0 + u64::from(i))
                    .unwrap_or_else(|| panic!("{i}"))
            })
            .collect();
        // .1 still tracked; .2 released; .3 released and touched last.
        t.release(keys[1], T0 + 10);
        t.release(keys[2], T0 + 11);
        let n = t.track(ip("10.0.0.4"), T0 + 12);
        assert!(n.is_some());
        let left: Vec<IpAddr> = t.entries(T0 + 12).into_iter().map(|(k, _)| k).collect();
        assert_eq!(left, [ip("10.0.0.1"), ip("10.0.0.3"), ip("10.0.0.4")]);
        // Everything in use: no room.
        let mut full = table(1, None, ALL);
        full.track(ip("10.0.0.1"), T0);
        assert_eq!(full.track(ip("10.0.0.2"), T0), None);
        let mut nopurge = table(1, None, ALL);
        nopurge.def.nopurge = true;
        let k = nopurge.track(ip("10.0.0.1"), T0).unwrap_or_else(|| panic!("tracked"));
        nopurge.release(k, T0);
        assert_eq!(nopurge.track(ip("10.0.0.2"), T0), None);
    }

    #[test]
    fn gpc0_counts_and_touches() {
        let mut t = table(10, Some(1_000), ALL);
        let k = t.track(ip("198.18.0.2"), T0).unwrap_or_else(|| panic!("tracked"));
        assert_eq!(t.inc_gpc0(k, T0 + 1), 1);
        assert_eq!(t.inc_gpc0(k, T0 + 2), 2);
        assert_eq!(t.read(k, Counter::Gpc0, T0 + 3), Read::Value(2));
        assert_eq!(t.read(k, Counter::Gpc0Rate, T0 + 3), Read::Value(2));
        // Only the rate stored: the value is the period's count.
        let mut r = table(10, None, Store { gpc0: false, ..ALL });
        let k = r.track(ip("198.18.0.2"), T0).unwrap_or_else(|| panic!("tracked"));
        r.inc_gpc0(k, T0);
        assert_eq!(r.inc_gpc0(k, T0 + 1), 2);
        assert_eq!(r.read(k, Counter::Gpc0, T0), Read::NotStored);
        // src_inc_gpc0 creates the entry.
        assert_eq!(t.inc_gpc0_creating(ip("198.18.0.9"), T0 + 4), Some(1));
        assert_eq!(t.inc_gpc0_creating(ip("2001:db8::1"), T0 + 4), None);
    }

    #[test]
    fn keys_follow_the_table_type() {
        let v4 = table(1, None, ALL);
        assert_eq!(v4.key(ip("::ffff:10.0.0.1")), Some(ip("10.0.0.1")));
        assert_eq!(v4.key(ip("2001:db8::1")), None);
        let mut v6 = table(1, None, ALL);
        v6.def.key = StickKey::Ipv6;
        assert_eq!(v6.key(ip("10.0.0.1")), Some(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn clear_spares_entries_in_use() {
        let mut t = table(10, None, ALL);
        let a = t.track(ip("10.0.0.1"), T0).unwrap_or_else(|| panic!("tracked"));
        let b = t.track(ip("10.0.0.2"), T0).unwrap_or_else(|| panic!("tracked"));
        t.release(b, T0);
        assert_eq!(t.clear(T0, &|_, _| true), 1);
        assert_eq!(t.used(T0), 1);
        t.release(a, T0);
        assert_eq!(t.clear(T0, &|k, _| k == a), 0);
        assert_eq!(t.used(T0), 0);
    }
}
