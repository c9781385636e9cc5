//! `stick-table` lines, checked as HAProxy 2.6 checks them, into the
//! table's model. What lbxdp's tables don't keep (other key types, other
//! data, `peers`, `srvkey`) is refused with its place.
use super::{Draft, Parser, arg, refusal_at};
use crate::config::{
    diag::Origin,
    model::Unsupported,
    stick::{DATA_TYPES, StickKey, StickTable, Store},
};

/// HAProxy's `parse_size_err()`: the value, with k, m, g as powers of 1024.
fn size_value(v: &str) -> u64 {
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    let n = digits.parse::<u64>().unwrap_or(u64::MAX);
    let mult: u64 = match v[digits.len()..].chars().next() {
        Some('k' | 'K') => 1 << 10,
        Some('m' | 'M') => 1 << 20,
        Some('g' | 'G') => 1 << 30,
        _ => 1,
    };
    n.saturating_mul(mult)
}

/// A store option's period: `conn_rate(10s)`. Err: HAProxy's message end.
fn period(name: &str, arg: Option<&str>) -> Result<u32, String> {
    let Some(a) = arg.filter(|a| !a.is_empty()) else {
        return Err(format!("missing argument to store option '{name}'."));
    };
    match crate::config::time::parse_ms(a) {
        Ok(t) if t.trailing_junk.is_none() => Ok(u32::try_from(t.value.as_millis()).unwrap_or(u32::MAX)),
        _ => Err(format!("error when processing store option '{name}'.")),
    }
}

/// `size 100k`: digits and an optional k, m or g.
fn size_ok(v: &str) -> Option<char> {
    let digits = v.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G']);
    match digits.chars().find(|c| !c.is_ascii_digit()) {
        Some(c) => Some(c),
        None if digits.is_empty() => Some(v.chars().next().unwrap_or(' ')),
        None => (digits.len() + 1 < v.len()).then(|| v.chars().last().unwrap_or(' ')),
    }
}

impl Parser<'_> {
    /// `stick-table type T size N [expire E] [nopurge] [store ...] ...`,
    /// checked as HAProxy checks it; a well-formed one becomes the proxy's
    /// table. True: it is well formed.
    pub(super) fn stick_table(&mut self, p: &mut Draft, w: &[String], at: &Origin) -> bool {
        if let Some(prev) = &p.stick_table {
            let msg = format!(
                "stick-table name '{}' conflicts with table declared in {} '{}' at {}.",
                p.name,
                p.kind.word(),
                p.name,
                prev.origin
            );
            self.diags.alert(at, msg);
            return false;
        }
        let directive = format!("{} {}", p.kind.word(), p.name);
        let mut refused: Vec<String> = Vec::new();
        let mut table = StickTable {
            name: p.name.clone(),
            key: StickKey::Ipv4,
            size: 0,
            expire_ms: None,
            store: Store::default(),
            nopurge: false,
            origin: at.clone(),
        };
        let (mut ty, mut size) = (false, false);
        let mut i = 1;
        let fail = |me: &mut Self, msg: String| {
            me.diags.alert(at, format!("stick-table: {msg}"));
            false
        };
        while i < w.len() {
            let (k, v) = (w[i].as_str(), arg(w, i + 1));
            i += 2;
            match k {
                "" => {}
                "type" => {
                    match v {
                        "ip" => table.key = StickKey::Ipv4,
                        "ipv6" => table.key = StickKey::Ipv6,
                        "integer" | "string" | "binary" => refused.push(format!("type {v}")),
                        _ => return fail(self, format!("unknown type '{v}'.")),
                    }
                    if arg(w, i) == "len" && matches!(v, "string" | "binary") {
                        i += 2;
                    }
                    ty = true;
                }
                "size" => {
                    if v.is_empty() {
                        return fail(self, format!("missing argument after '{k}'."));
                    }
                    if let Some(c) = size_ok(v) {
                        return fail(self, format!("unexpected character '{c}' in argument of 'size'."));
                    }
                    table.size = u32::try_from(size_value(v)).unwrap_or(u32::MAX);
                    size = table.size > 0;
                }
                "expire" => match crate::config::time::parse_ms(v) {
                    Ok(t) if t.trailing_junk.is_none() => {
                        let ms = u32::try_from(t.value.as_millis()).unwrap_or(u32::MAX);
                        table.expire_ms = (ms > 0).then_some(ms);
                    }
                    Ok(t) => {
                        let c = t.trailing_junk.unwrap_or(' ');
                        return fail(self, format!("unexpected character '{c}' in argument of 'expire'."));
                    }
                    Err(crate::config::time::TimeError::BadChar(c)) => {
                        return fail(self, format!("unexpected character '{c}' in argument of 'expire'."));
                    }
                    Err(e) => return fail(self, format!("{e} in argument of 'expire'.")),
                },
                "store" => {
                    for item in v.split(',').filter(|x| !x.is_empty()) {
                        let (name, sa) = match item.split_once('(') {
                            Some((n, rest)) => (n, Some(rest.trim_end_matches(')'))),
                            None => (item, None),
                        };
                        if !DATA_TYPES.contains(&name) {
                            return fail(self, format!("unknown store option '{name}'."));
                        }
                        let rate = name.ends_with("_rate");
                        if !rate && sa.is_some() && !matches!(name, "gpc" | "gpt") {
                            return fail(self, format!("unexpected argument to store option '{name}'."));
                        }
                        let st = &mut table.store;
                        let already = match name {
                            "gpc0" => std::mem::replace(&mut st.gpc0, true),
                            "conn_cnt" => std::mem::replace(&mut st.conn_cnt, true),
                            "conn_cur" => std::mem::replace(&mut st.conn_cur, true),
                            "gpc0_rate" | "conn_rate" => {
                                let ms = match period(name, sa) {
                                    Ok(ms) => ms,
                                    Err(msg) => return fail(self, msg),
                                };
                                let slot = if name == "gpc0_rate" {
                                    &mut st.gpc0_rate
                                } else {
                                    &mut st.conn_rate
                                };
                                // HAProxy keeps the first and warns about the next.
                                let was = slot.is_some();
                                if !was {
                                    *slot = Some(ms);
                                }
                                was
                            }
                            other => {
                                if rate && let Err(msg) = period(other, sa) {
                                    return fail(self, msg);
                                }
                                refused.push(format!("store {other}"));
                                false
                            }
                        };
                        if already {
                            self.diags.warn(
                                at,
                                format!("stick-table: store option '{name}' already enabled, ignored."),
                            );
                        }
                    }
                }
                "peers" | "srvkey" | "write-to" => {
                    if v.is_empty() {
                        return fail(self, format!("missing argument after '{k}'."));
                    }
                    // Peers would share the counters with other processes,
                    // srvkey names what `stick` rules store: neither is done.
                    refused.push(k.to_string());
                }
                "nopurge" => {
                    table.nopurge = true;
                    i -= 1;
                }
                other => return fail(self, format!("unknown argument '{other}'.")),
            }
        }
        if !size {
            return fail(self, "missing size.".into());
        }
        if !ty {
            return fail(self, "missing type.".into());
        }
        for keyword in refused {
            self.out
                .refused
                .push(refusal_at(at, directive.clone(), &keyword, Unsupported::StickTables));
        }
        p.stick_table = Some(table);
        true
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{
        Diag, Unsupported,
        acl::{Fetch, TcpAction},
        parse_str,
        stick::{Counter, StickKey, StickRef, Store},
    };

    const HEAD: &str = "defaults\n timeout client 1s\n timeout connect 1s\n timeout server 1s\n";

    fn parse(body: &str) -> Result<(crate::config::Config, Vec<Diag>), Vec<Diag>> {
        parse_str("t.cfg", &format!("{HEAD}{body}"))
    }

    #[test]
    fn tables_tracking_and_counters_resolve_into_the_model() {
        let body = "frontend f\n bind :80\n stick-table type ip size 100k expire 30s store \
                    conn_cur,conn_cnt,conn_rate(10s),gpc0,gpc0_rate(1m)\n tcp-request connection track-sc0 src\n \
                    tcp-request connection track-sc1 src table st6\n tcp-request connection sc-inc-gpc0(1) if { \
                    sc1_conn_cur gt 2 }\n tcp-request connection reject if { sc0_conn_rate gt 3 } || { \
                    src_get_gpc0(st6) ge 1 } !{ sc_conn_cnt(2) lt 0 }\n use_backend spare if { be_conn(main) ge 5 } \
                    { connslots(main) lt 1 } { fe_conn gt 9 }\n default_backend main\nbackend main\n server s \
                    127.0.0.1:81 maxconn 10 maxqueue 5\nbackend spare\n server s 127.0.0.1:82\nbackend st6\n \
                    stick-table type ipv6 size 1k nopurge store gpc0\n";
        let (c, w) = parse(body).unwrap_or_else(|d| panic!("{d:?}"));
        assert!(c.refused.is_empty(), "{:?}", c.refused);
        assert!(w.iter().all(|d| !d.message.contains("stick")), "{w:?}");
        assert_eq!(c.tables.len(), 2);
        let t = &c.tables[0];
        assert_eq!(
            (t.name.as_str(), t.key, t.size, t.expire_ms),
            ("f", StickKey::Ipv4, 102_400, Some(30_000))
        );
        assert_eq!(
            t.store,
            Store {
                gpc0: true,
                gpc0_rate: Some(60_000),
                conn_cnt: true,
                conn_rate: Some(10_000),
                conn_cur: true
            }
        );
        let s = &c.tables[1];
        assert_eq!(
            (s.name.as_str(), s.key, s.nopurge, s.expire_ms),
            ("st6", StickKey::Ipv6, true, None)
        );
        let f = &c.frontends[0];
        let actions: Vec<&TcpAction> = f.tcp_rules.iter().map(|r| &r.action).collect();
        assert_eq!(
            actions,
            [
                &TcpAction::Track {
                    slot: 0,
                    table: "f".into()
                },
                &TcpAction::Track {
                    slot: 1,
                    table: "st6".into()
                },
                &TcpAction::IncGpc0 { slot: 1 },
                &TcpAction::Reject,
            ]
        );
        let fetches: Vec<&Fetch> = f.acls.iter().flat_map(|a| &a.exprs).map(|e| &e.fetch).collect();
        assert_eq!(
            fetches,
            [
                &Fetch::Stick {
                    from: StickRef::Tracked { slot: 1, table: None },
                    counter: Counter::ConnCur
                },
                &Fetch::Stick {
                    from: StickRef::Tracked { slot: 0, table: None },
                    counter: Counter::ConnRate
                },
                &Fetch::Stick {
                    from: StickRef::Src { table: "st6".into() },
                    counter: Counter::Gpc0
                },
                &Fetch::Stick {
                    from: StickRef::Tracked { slot: 2, table: None },
                    counter: Counter::ConnCnt
                },
                &Fetch::BeConn("main".into()),
                &Fetch::ConnSlots("main".into()),
                &Fetch::FeConn("f".into()),
            ]
        );
        assert_eq!(c.backends[0].servers[0].maxqueue, Some(5));
    }

    #[test]
    fn what_lbxdp_tables_do_not_keep_is_refused_with_its_place() {
        for (line, keyword) in [
            (" stick-table type string len 32 size 1k\n", "type string"),
            (" stick-table type integer size 1k\n", "type integer"),
            (
                " stick-table type ip size 1k store http_req_rate(10s)\n",
                "store http_req_rate",
            ),
            (
                " stick-table type ip size 1k store conn_cur,bytes_in_cnt\n",
                "store bytes_in_cnt",
            ),
            (" stick-table type ip size 1k peers mypeers\n", "peers"),
            (" stick-table type ip size 1k srvkey addr\n", "srvkey"),
            (
                " tcp-request connection track-sc0 dst\n stick-table type ip size 1k\n",
                "track-sc0",
            ),
            (
                " tcp-request connection track-sc0 src,ipmask(24)\n stick-table type ip size 1k\n",
                "track-sc0",
            ),
            (
                " tcp-request connection sc-set-gpt0(0) 1\n stick-table type ip size 1k\n",
                "sc-set-gpt0(0)",
            ),
        ] {
            let (c, _) = parse(&format!("frontend f\n bind :80\n{line} default_backend b\nbackend b\n"))
                .unwrap_or_else(|d| panic!("{line}: {d:?}"));
            assert_eq!(c.refused.len(), 1, "{line}: {:?}", c.refused);
            let r = &c.refused[0];
            assert_eq!(
                (r.what, r.keyword.as_str(), r.origin.line),
                (Unsupported::StickTables, keyword, 7),
                "{line}"
            );
        }
    }

    #[test]
    fn bad_tables_get_haproxys_alerts() {
        for (line, want) in [
            (
                " stick-table type ip size 1k store conn_rate\n",
                "stick-table: missing argument to store option 'conn_rate'.",
            ),
            (
                " stick-table type ip size 1k store conn_cur(1s)\n",
                "stick-table: unexpected argument to store option 'conn_cur'.",
            ),
            (" stick-table type ip size 0\n", "stick-table: missing size."),
            (" stick-table type ip\n", "stick-table: missing size."),
            (" stick-table size 1\n", "stick-table: missing type."),
            (
                " stick-table type ip size 1 expire 3x\n",
                "stick-table: unexpected character 'x' in argument of 'expire'.",
            ),
            (
                " tcp-request connection sc-inc-gpc0(5)\n",
                "invalid stick table track ID. The max allowed ID is 2",
            ),
            (
                " tcp-request connection track-sc0 src table nope\n",
                "unable to find table 'nope' referenced by track-sc0",
            ),
            (
                " acl a src_conn_rate gt 1\n",
                "unable to find table 'f' referenced in arg 1 of ACL keyword 'src_conn_rate'",
            ),
        ] {
            let got = parse(&format!("frontend f\n bind :80\n{line} default_backend b\nbackend b\n"));
            let Err(d) = got else {
                panic!("{line}: expected an alert");
            };
            assert!(
                d.iter().any(|d| d.to_string().contains(want)),
                "{line}: wanted {want}, got {d:?}"
            );
        }
    }
}
