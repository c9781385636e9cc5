//! Stick tables: per client address counters that `track-sc` rules keep and
//! conditions read (`sc0_conn_rate`, `src_conn_cur`...), as HAProxy 2.6
//! keeps them: frequency counters over a period, `conn_cur` given back when
//! the connection closes, entries that expire after their last touch. One
//! LRU map holds every table's entries, keyed by (table, address).
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    macros::map,
    maps::{Array, LruHashMap},
};
use lbxdp_common::{
    DEFAULT_MAX_STICK, FAMILY_V4, MAX_STICK_TABLES, STICK_CONN_CNT, STICK_CONN_CUR, STICK_CONN_RATE,
    STICK_GPC0, STICK_GPC0_RATE, STICK_KEY_IPV6, STORE_CONN_CNT, STORE_CONN_CUR, STORE_GPC0, StickEntry,
    StickTableConf,
};

use crate::{Scratch, copy};

#[map(name = "STICK_TABLES")]
static STICK_TABLES: Array<StickTableConf> = Array::with_max_entries(MAX_STICK_TABLES, 0);
/// Resized by the agent to its tables' sizes.
#[map(name = "STICK")]
static STICK: LruHashMap<lbxdp_common::StickKey, StickEntry> = LruHashMap::with_max_entries(DEFAULT_MAX_STICK, 0);

/// Not a counter's value: the fetch failed (nothing tracked, not stored).
pub const FAILED: u64 = u64::MAX;

/// Sets `s.skey` to table `table`'s key for the flow's client (`s.key`'s
/// source): false when the table's type can't hold it (an IPv6 client in a
/// `type ip` table).
#[inline(always)]
fn key(s: &mut Scratch, table: u32, conf: &StickTableConf) -> bool {
    let v4 = s.key.family == FAMILY_V4;
    if !v4 && conf.flags & STICK_KEY_IPV6 == 0 && !mapped(&s.key.src) {
        return false;
    }
    s.skey.table = table;
    // SAFETY: fields of the scratch space (see `copy`).
    unsafe {
        if v4 {
            copy::mapped(&mut s.skey.addr, &s.key.src);
        } else {
            copy::addr(&mut s.skey.addr, &s.key.src);
        }
    }
    true
}

/// `::ffff:a.b.c.d`.
#[inline(always)]
fn mapped(a: &[u8; 16]) -> bool {
    a[..10].iter().all(|b| *b == 0) && a[10] == 0xff && a[11] == 0xff
}

#[inline(always)]
fn expired(e: &StickEntry, conf: &StickTableConf, now: u32) -> bool {
    conf.expire_ms != 0 && now.wrapping_sub(e.touched_ms) > conf.expire_ms
}

/// The client's entry in `table`, made (or made anew, if it expired) when
/// `create`; null if there is none or the table can't hold the client.
#[inline(always)]
fn entry(s: &mut Scratch, table: u32, create: bool, now: u32) -> *mut StickEntry {
    let Some(conf) = STICK_TABLES.get(table) else {
        return core::ptr::null_mut();
    };
    if !key(s, table, conf) {
        return core::ptr::null_mut();
    }
    if let Some(e) = STICK.get_ptr_mut(&s.skey) {
        // SAFETY: a value of our LRU map; racing CPUs only touch its plain
        // counters, and a lost update costs one count.
        let fresh = unsafe { expired(&*e, conf, now) };
        if !fresh {
            return e;
        }
        if !create {
            return core::ptr::null_mut();
        }
        // SAFETY: as above; an expired entry starts over.
        unsafe { copy::clear_words(&mut *e) };
        // SAFETY: as above.
        unsafe { (*e).touched_ms = now };
        return e;
    }
    if !create {
        return core::ptr::null_mut();
    }
    // SAFETY: the scratch space's entry (see `copy`).
    unsafe { copy::clear_words(&mut s.sentry) };
    s.sentry.touched_ms = now;
    // Another CPU may have made it meanwhile: then its entry is used.
    let _ = STICK.insert(&s.skey, &s.sentry, BPF_NOEXIST as u64);
    STICK.get_ptr_mut(&s.skey).unwrap_or(core::ptr::null_mut())
}

/// `track-scN src [table T]`: the client's entry in `table`, which counts
/// the connection when `count` (not for a SYN retransmit, already counted):
/// `conn_cur`, `conn_cnt` and `conn_rate` go up. False: not tracked.
#[inline(never)]
pub fn track(s: &mut Scratch, table: u32, count: bool, now: u32) -> bool {
    let e = entry(s, table, true, now);
    if e.is_null() {
        return false;
    }
    let Some(conf) = STICK_TABLES.get(table) else {
        return false;
    };
    // SAFETY: a value of our LRU map (see `entry`).
    let e = unsafe { &mut *e };
    if count {
        if conf.flags & STORE_CONN_CUR != 0 {
            e.conn_cur = e.conn_cur.wrapping_add(1);
        }
        if conf.flags & STORE_CONN_CNT != 0 {
            e.conn_cnt = e.conn_cnt.wrapping_add(1);
        }
        if conf.conn_rate_ms != 0 {
            e.conn_rate.update(now, conf.conn_rate_ms, 1);
        }
    }
    e.touched_ms = now;
    true
}

/// `sc-inc-gpc0`: gpc0 and its rate go up on the client's entry in
/// `table`, if there is one.
#[inline(never)]
pub fn inc_gpc0(s: &mut Scratch, table: u32, now: u32) {
    let e = entry(s, table, false, now);
    let Some(conf) = STICK_TABLES.get(table) else {
        return;
    };
    if e.is_null() {
        return;
    }
    // SAFETY: a value of our LRU map (see `entry`).
    let e = unsafe { &mut *e };
    if conf.gpc0_rate_ms != 0 {
        e.gpc0_rate.update(now, conf.gpc0_rate_ms, 1);
    }
    if conf.flags & STORE_GPC0 != 0 {
        e.gpc0 = e.gpc0.wrapping_add(1);
    }
    if conf.flags & STORE_GPC0 != 0 || conf.gpc0_rate_ms != 0 {
        e.touched_ms = now;
    }
}

/// A counter of the client's entry in `table`: no entry reads 0, a counter
/// the table doesn't store fails (`FAILED`).
#[inline(never)]
pub fn read(s: &mut Scratch, table: u32, counter: u32, now: u32) -> u64 {
    let Some(conf) = STICK_TABLES.get(table) else {
        return FAILED;
    };
    let stored = match counter as u8 {
        STICK_CONN_CUR => conf.flags & STORE_CONN_CUR != 0,
        STICK_CONN_CNT => conf.flags & STORE_CONN_CNT != 0,
        STICK_CONN_RATE => conf.conn_rate_ms != 0,
        STICK_GPC0 => conf.flags & STORE_GPC0 != 0,
        STICK_GPC0_RATE => conf.gpc0_rate_ms != 0,
        _ => false,
    };
    let e = entry(s, table, false, now);
    if e.is_null() {
        // HAProxy's fetch of a missing entry is 0, even of a counter not stored.
        return 0;
    }
    if !stored {
        return FAILED;
    }
    // SAFETY: a value of our LRU map (see `entry`).
    let e = unsafe { &*e };
    u64::from(match counter as u8 {
        STICK_CONN_CUR => e.conn_cur,
        STICK_CONN_CNT => e.conn_cnt,
        STICK_CONN_RATE => e.conn_rate.read(now, conf.conn_rate_ms),
        STICK_GPC0 => e.gpc0,
        _ => e.gpc0_rate.read(now, conf.gpc0_rate_ms),
    })
}

/// The connection ended (or was refused after it was counted): `conn_cur`
/// goes back down in each table in `tracked` (index + 1, 0 for none), for
/// the client of flow `s.key`.
#[inline(never)]
pub fn release(s: &mut Scratch, tracked: [u8; 4], now: u32) {
    for t in tracked.iter().take(lbxdp_common::STICK_SLOTS) {
        if *t == 0 {
            continue;
        }
        let table = u32::from(*t - 1);
        let e = entry(s, table, false, now);
        let Some(conf) = STICK_TABLES.get(table) else {
            continue;
        };
        if e.is_null() || conf.flags & STORE_CONN_CUR == 0 {
            continue;
        }
        // SAFETY: a value of our LRU map (see `entry`).
        unsafe {
            (*e).conn_cur = (*e).conn_cur.saturating_sub(1);
            (*e).touched_ms = now;
        }
    }
}
