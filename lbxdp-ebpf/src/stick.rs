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
    DEFAULT_MAX_STICK, EXPR_STICK_SLOT, EXPR_STICK_SRC, FAMILY_V4, MAX_RULE_EXPRS, MAX_STICK_TABLES, STICK_CONN_CNT,
    STICK_CONN_CUR, STICK_CONN_RATE, STICK_GPC0, STICK_GPC0_RATE, STICK_KEY_IPV6, STICK_SLOTS, STORE_CONN_CNT,
    STORE_CONN_CUR, STORE_GPC0, StickEntry, StickTableConf,
};

use crate::{Scratch, copy};

#[map(name = "STICK_TABLES")]
static STICK_TABLES: Array<StickTableConf> = Array::with_max_entries(MAX_STICK_TABLES, 0);
/// Resized by the agent to its tables' sizes.
#[map(name = "STICK")]
static STICK: LruHashMap<lbxdp_common::StickKey, StickEntry> = LruHashMap::with_max_entries(DEFAULT_MAX_STICK, 0);

/// Not a counter's value: the fetch failed (nothing tracked, not stored).
pub const FAILED: u64 = u64::MAX;

/// Sets `s.skey`'s address to the flow's client (`s.key`'s source), IPv4
/// mapped, and whether a `type ip` table can hold it.
#[inline(never)]
pub fn client(s: &mut Scratch) {
    let v4 = s.key.family == FAMILY_V4;
    s.v4ish = u8::from(v4 || mapped(&s.key.src));
    // SAFETY: fields of the scratch space (see `copy`).
    unsafe {
        if v4 {
            copy::mapped(&mut s.skey.addr, &s.key.src);
        } else {
            copy::addr(&mut s.skey.addr, &s.key.src);
        }
    }
}

/// Sets `s.skey` to table `table`'s key for the client (see `client`):
/// false when the table's type can't hold it (an IPv6 client in a `type ip`
/// table).
#[inline(always)]
fn key(s: &mut Scratch, table: u32, conf: &StickTableConf) -> bool {
    if conf.flags & STICK_KEY_IPV6 == 0 && s.v4ish == 0 {
        return false;
    }
    s.skey.table = table;
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
    let counter = counter as usize;
    let e = entry(s, table, false, now);
    if e.is_null() {
        // HAProxy's fetch of a missing entry is 0, even of a counter not stored.
        return 0;
    }
    if counter >= 5 || stored(conf) & (1 << counter) == 0 {
        return FAILED;
    }
    // SAFETY: a value of our LRU map (see `entry`).
    let e = unsafe { &*e };
    // A match, not an index: the verifier refuses a variable offset into
    // the stack, and computes only the counter asked for.
    u64::from(match counter as u8 {
        STICK_CONN_CUR => e.conn_cur,
        STICK_CONN_CNT => e.conn_cnt,
        STICK_CONN_RATE => e.conn_rate.read(now, conf.conn_rate_ms),
        STICK_GPC0 => e.gpc0,
        _ => e.gpc0_rate.read(now, conf.gpc0_rate_ms),
    })
}

/// An entry's counters now, indexed by `STICK_*`.
#[inline(always)]
fn counters(e: &StickEntry, conf: &StickTableConf, now: u32) -> [u32; 5] {
    [
        e.conn_cur,
        e.conn_cnt,
        e.conn_rate.read(now, conf.conn_rate_ms),
        e.gpc0,
        e.gpc0_rate.read(now, conf.gpc0_rate_ms),
    ]
}

/// Gives back `conn_cur` for the tables the rules tracked a flow in that
/// never was (the rules or the flow table refused it).
#[inline(always)]
pub fn untrack(s: &mut Scratch, now: u32) {
    let tracked = s.tracked;
    if u32::from_ne_bytes(tracked) != 0 {
        release(s, tracked, now);
    }
}

/// The connection ended (or was refused after it was counted): `conn_cur`
/// goes back down in each table in `tracked` (index + 1, 0 for none), for
/// the client of flow `s.key`.
#[inline(never)]
pub fn release(s: &mut Scratch, tracked: [u8; 4], now: u32) {
    client(s);
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

/// A tracked entry's counters as the rules read them: the table (index +
/// 1, 0 for none), which counters it stores (bit `STICK_*`), their values.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Values {
    pub table: u32,
    pub stored: u32,
    pub v: [u32; 5],
    pub pad: u32,
}

/// Which counters a table stores (bits `1 << STICK_*`).
#[inline(always)]
fn stored(conf: &StickTableConf) -> u32 {
    (if conf.flags & STORE_CONN_CUR != 0 {
        1 << STICK_CONN_CUR
    } else {
        0
    }) | (if conf.flags & STORE_CONN_CNT != 0 {
        1 << STICK_CONN_CNT
    } else {
        0
    }) | (if conf.conn_rate_ms != 0 {
        1 << STICK_CONN_RATE
    } else {
        0
    }) | (if conf.flags & STORE_GPC0 != 0 {
        1 << STICK_GPC0
    } else {
        0
    }) | (if conf.gpc0_rate_ms != 0 {
        1 << STICK_GPC0_RATE
    } else {
        0
    })
}

/// Fills slot `slot`'s cache from its tracked entry (see `Values`).
#[inline(never)]
pub fn values(s: &mut Scratch, slot: usize, now: u32) {
    let t = s.tracked[slot & 3];
    let c = &mut s.sc[slot & 3];
    // SAFETY: plain u32s in the scratch space (see `copy`).
    unsafe { copy::clear_words(c) };
    c.table = u32::from(t);
    if t == 0 {
        return;
    }
    let table = u32::from(t) - 1;
    let Some(conf) = STICK_TABLES.get(table) else {
        return;
    };
    let e = entry(s, table, false, now);
    let c = &mut s.sc[slot & 3];
    c.stored = stored(conf);
    if e.is_null() {
        return;
    }
    // SAFETY: a value of our LRU map (see `entry`).
    c.v = counters(unsafe { &*e }, conf, now);
}

/// Before the rules: the client's key, no slot tracked, and the
/// `EXPR_STICK_SRC` expressions' counters as they are now.
#[inline(never)]
pub fn start(s: &mut Scratch, r: &lbxdp_common::Rules, now: u32) {
    client(s);
    s.src_ok = 0;
    for c in s.sc.iter_mut() {
        c.table = 0;
    }
    for (i, e) in r.expr.iter().enumerate() {
        if i as u32 >= r.exprs {
            break;
        }
        if e.kind != EXPR_STICK_SRC {
            continue;
        }
        let v = read(s, e.set, u32::from(e.pad[0]), now);
        if v != FAILED {
            s.src_val[i] = v as u32;
            s.src_ok |= 1 << i;
        }
    }
}

/// Stick expression `i` (`e`)'s counter from the caches, or `FAILED`: a
/// slot's from its cache; a table's from the slot tracking in that table
/// (the same client) if one does, else as it was before the rules.
#[inline(always)]
pub fn cached(s: &Scratch, i: usize, e: &lbxdp_common::RuleExpr) -> u64 {
    let counter = usize::from(e.pad[0]);
    if counter >= 5 {
        return FAILED;
    }
    let from = |c: &Values| {
        if c.stored & (1 << counter) == 0 {
            FAILED
        } else {
            u64::from(c.v[counter])
        }
    };
    if e.kind == EXPR_STICK_SLOT {
        let slot = e.set as usize;
        if slot >= STICK_SLOTS || s.sc[slot & 3].table == 0 {
            return FAILED;
        }
        return from(&s.sc[slot & 3]);
    }
    let need = usize::from(e.pad[1]);
    if need != 0 && (need > STICK_SLOTS || s.sc[(need - 1) & 3].table == 0) {
        return FAILED;
    }
    for c in s.sc.iter().take(STICK_SLOTS) {
        if c.table == e.set + 1 {
            return from(c);
        }
    }
    if i < MAX_RULE_EXPRS && s.src_ok & (1 << i) != 0 {
        u64::from(s.src_val[i & (MAX_RULE_EXPRS - 1)])
    } else {
        FAILED
    }
}
