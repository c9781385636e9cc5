//! `show table` / `clear table` as HAProxy 2.6's runtime API reads and
//! answers them (src/stick_table.c: `cli_parse_table_req`,
//! `table_dump_head_to_buffer`, `table_dump_entry_to_buffer`), over a
//! [`Dump`] any engine can give.
use std::net::IpAddr;

use super::table::{Entry, value};
use crate::config::stick::{Counter, StickKey, Store};

/// One table as an engine reads it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    pub name: String,
    pub key: StickKey,
    pub size: u32,
    pub store: Store,
    /// Every entry, in key order.
    pub entries: Vec<(IpAddr, Entry)>,
    /// The engine's clock for the entries' dates (ms).
    pub now: u64,
}

/// `eq ne le ge lt gt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Le,
    Ge,
    Lt,
    Gt,
}

/// `data.<type> <op> <value>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter {
    pub counter: Counter,
    pub op: Op,
    pub value: i64,
}

/// What `show table NAME ...` / `clear table NAME ...` pick.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Select {
    /// `key K`, already the table's key.
    pub key: Option<IpAddr>,
    pub filters: Vec<Filter>,
}

/// A data type name the table stores: Err(true) unknown, Err(false) not stored.
fn stored(name: &str, store: &Store) -> Result<Counter, bool> {
    let c = match name {
        "gpc0" if store.gpc0 => Counter::Gpc0,
        "gpc0_rate" if store.gpc0_rate.is_some() => Counter::Gpc0Rate,
        "conn_cnt" if store.conn_cnt => Counter::ConnCnt,
        "conn_rate" if store.conn_rate.is_some() => Counter::ConnRate,
        "conn_cur" if store.conn_cur => Counter::ConnCur,
        other => return Err(!crate::config::stick::DATA_TYPES.contains(&other)),
    };
    Ok(c)
}

/// C's `strl2llrc()`: an optional sign and digits only.
fn integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `table_prepare_data_request()`: `args` are the words after the table's
/// name, the first starting with `data.`. Err is HAProxy's message.
pub fn parse_filters(args: &[&str], store: &Store) -> Result<Vec<Filter>, String> {
    // HAProxy's STKTABLE_FILTER_LEN.
    const MAX: usize = 4;
    let arg = |i: usize| args.get(i).copied().unwrap_or("");
    let mut out = Vec::new();
    let mut i = 0;
    while i < MAX {
        if i > 0 && arg(3 * i).is_empty() {
            break;
        }
        let n = i + 1;
        let name = arg(3 * i).strip_prefix("data.").unwrap_or("\u{0}");
        let counter = match stored(name, store) {
            Ok(c) => c,
            Err(true) => return Err(format!("Filter entry #{n}: Unknown data type\n")),
            Err(false) => return Err(format!("Filter entry #{n}: Data type not stored in this table\n")),
        };
        let op = match arg(3 * i + 1) {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "le" => Op::Le,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "gt" => Op::Gt,
            _ => {
                return Err(format!(
                    "Filter entry #{n}: Require and operator among \"eq\", \"ne\", \"le\", \"ge\", \"lt\", \"gt\"\n"
                ));
            }
        };
        let Some(value) = integer(arg(3 * i + 2)) else {
            return Err(format!(
                "Filter entry #{n}: Require a valid integer value to compare against\n"
            ));
        };
        out.push(Filter { counter, op, value });
        i += 1;
    }
    if !arg(3 * i).is_empty() {
        // HAProxy counts words from the command's start (`show table NAME` are 3).
        return Err(format!(
            "Detected extra data in filter, {}th word of input, after '{}'\n",
            3 + 3 * i + 1,
            if i == 0 { "" } else { arg(3 * i - 1) }
        ));
    }
    Ok(out)
}

/// The key `key K` names in a table of this type (HAProxy: `inetaddr_host`
/// for `ip`, which takes what it can; `inet_pton` for `ipv6`).
pub fn parse_key(text: &str, key: StickKey) -> Result<IpAddr, String> {
    match key {
        StickKey::Ipv4 => text
            .parse::<std::net::Ipv4Addr>()
            .map(IpAddr::V4)
            // inetaddr_host() gives 0.0.0.0 for what it can't read.
            .or(Ok(IpAddr::from([0, 0, 0, 0]))),
        StickKey::Ipv6 => text
            .parse::<std::net::Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| "Invalid key\n".to_string()),
    }
}

impl Select {
    /// Whether the entry is picked: its key, and every filter holding
    /// (HAProxy skips an entry as soon as one filter fails).
    pub fn picks(&self, store: &Store, key: IpAddr, e: &Entry, now: u64) -> bool {
        if self.key.is_some_and(|k| k != key) {
            return false;
        }
        self.filters.iter().all(|f| {
            let data = value(store, e, f.counter, now).unwrap_or(0);
            match f.op {
                Op::Eq => data == f.value,
                Op::Ne => data != f.value,
                Op::Le => data <= f.value,
                Op::Ge => data >= f.value,
                Op::Lt => data < f.value,
                Op::Gt => data > f.value,
            }
        })
    }
}

/// `# table: NAME, type: ip, size:N, used:M`.
pub fn header(d: &Dump) -> String {
    format!(
        "# table: {}, type: {}, size:{}, used:{}\n",
        d.name,
        d.key.word(),
        d.size,
        d.entries.len()
    )
}

/// One entry's line: HAProxy's pointer column (an identity here), the key,
/// its users, the ms before it expires, then the stored data in HAProxy's
/// order (gpc0, gpc0_rate, conn_cnt, conn_rate, conn_cur).
pub fn entry_line(d: &Dump, key: IpAddr, e: &Entry) -> String {
    use std::fmt::Write as _;
    let s = &d.store;
    let tick = d.now as u32;
    let mut out = format!(
        "{:#x}: key={key} use={} exp={}",
        0x5600_0000_0000u64 + e.id * 0x100,
        e.refs,
        e.expire.saturating_sub(d.now)
    );
    if s.gpc0 {
        let _ = write!(out, " gpc0={}", e.gpc0);
    }
    if let Some(p) = s.gpc0_rate {
        let _ = write!(out, " gpc0_rate({p})={}", e.gpc0_rate.read(tick, p));
    }
    if s.conn_cnt {
        let _ = write!(out, " conn_cnt={}", e.conn_cnt);
    }
    if let Some(p) = s.conn_rate {
        let _ = write!(out, " conn_rate({p})={}", e.conn_rate.read(tick, p));
    }
    if s.conn_cur {
        let _ = write!(out, " conn_cur={}", e.conn_cur);
    }
    out.push('\n');
    out
}

/// `show table` (every table's header) or `show table NAME [filter]`.
/// `dumps` come in the configuration's order; HAProxy lists its tables
/// newest first (each new one goes to the head of its list).
pub fn show(dumps: &[Dump], named: bool, select: &Select) -> String {
    let mut out = String::new();
    for d in dumps.iter().rev() {
        if named && select.key.is_some() {
            // `key K`: nothing at all when there is no such entry.
            let Some((k, e)) = d.entries.iter().find(|(k, _)| Some(*k) == select.key) else {
                continue;
            };
            out.push_str(&header(d));
            out.push_str(&entry_line(d, *k, e));
            continue;
        }
        out.push_str(&header(d));
        if named {
            for (k, e) in &d.entries {
                if select.picks(&d.store, *k, e, d.now) {
                    out.push_str(&entry_line(d, *k, e));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: Store = Store {
        gpc0: true,
        gpc0_rate: None,
        conn_cnt: true,
        conn_rate: Some(10_000),
        conn_cur: true,
    };

    #[test]
    fn filters_are_read_and_refused_as_haproxy_does() {
        let f = parse_filters(&["data.conn_cnt", "gt", "3"], &STORE);
        assert_eq!(
            f,
            Ok(vec![Filter {
                counter: Counter::ConnCnt,
                op: Op::Gt,
                value: 3
            }])
        );
        assert_eq!(
            parse_filters(&["data.bogus", "gt", "3"], &STORE),
            Err("Filter entry #1: Unknown data type\n".into())
        );
        assert_eq!(
            parse_filters(&["data.http_req_cnt", "gt", "3"], &STORE),
            Err("Filter entry #1: Data type not stored in this table\n".into())
        );
        assert_eq!(
            parse_filters(&["data.conn_cnt", "is", "3"], &STORE),
            Err("Filter entry #1: Require and operator among \"eq\", \"ne\", \"le\", \"ge\", \"lt\", \"gt\"\n".into())
        );
        assert_eq!(
            parse_filters(&["data.conn_cnt", "gt", "x"], &STORE),
            Err("Filter entry #1: Require a valid integer value to compare against\n".into())
        );
        assert_eq!(
            parse_filters(&["data.conn_cnt", "gt", "1", "data.conn_cur", "eq", "0"], &STORE).map(|f| f.len()),
            Ok(2)
        );
    }

    #[test]
    fn lines_are_haproxys() {
        let mut e = Entry {
            conn_cnt: 4,
            conn_cur: 1,
            refs: 1,
            expire: 1_030_000,
            id: 1,
            ..Entry::default()
        };
        e.conn_rate.update(1_000_000, 10_000, 4);
        let d = Dump {
            name: "st_src".into(),
            key: StickKey::Ipv4,
            size: 1024,
            store: STORE,
            entries: vec![("198.18.0.2".parse().unwrap_or_else(|_| panic!()), e)],
            now: 1_000_500,
        };
        assert_eq!(
            show(std::slice::from_ref(&d), true, &Select::default()),
            "# table: st_src, type: ip, size:1024, used:1\n0x560000000100: key=198.18.0.2 use=1 exp=29500 gpc0=0 \
             conn_cnt=4 conn_rate(10000)=4 conn_cur=1\n"
        );
        assert_eq!(
            show(std::slice::from_ref(&d), false, &Select::default()),
            "# table: st_src, type: ip, size:1024, used:1\n"
        );
        let none = Select {
            key: Some("198.18.0.3".parse().unwrap_or_else(|_| panic!())),
            filters: vec![],
        };
        assert_eq!(show(std::slice::from_ref(&d), true, &none), "");
    }
}
