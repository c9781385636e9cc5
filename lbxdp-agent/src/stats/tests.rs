//! The views against real HAProxy 2.6.12 output (fixtures taken with
//! `show stat` / `show info` on the same configuration and states).
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use super::{
    columns::COLUMNS,
    csv::header,
    table::{Cell, RowKind},
    *,
};
use crate::{
    config::{Config, StatsPage, parse_str},
    health::{HealthCounter, LastCheck, ServerId, ServerState, Status},
    runtime::StatFilter,
};

const SHOW_STAT: &str = include_str!("fixtures/haproxy-2.6.12-show-stat.csv");
const SHOW_INFO: &str = include_str!("fixtures/haproxy-2.6.12-show-info.txt");

/// The fixtures' configuration (HAProxy's ids set as it numbered them).
fn config() -> Config {
    let text = "global\n maxconn 1000\n node mynode\n\
defaults\n mode tcp\n timeout client 5s\n timeout connect 1s\n timeout server 5s\n\
frontend fe1\n bind 127.0.0.1:28081\n default_backend be1\n\
backend be1\n balance roundrobin\n\
 server s1 127.0.0.1:28090 check inter 1s\n\
 server s2 127.0.0.1:28091 check inter 1s rise 2 fall 3\n\
 server s3 127.0.0.1:28092\n\
 server s4 127.0.0.1:28093 backup check\n\
 server s5 127.0.0.1:28094 disabled\n\
 server s6 127.0.0.1:28095 weight 50\n\
listen li\n bind 127.0.0.1:28082\n balance leastconn\n server a 127.0.0.1:28096\n";
    let mut c = match parse_str("t.cfg", text) {
        Ok((c, _)) => c,
        Err(d) => panic!("config: {d:#?}"),
    };
    for f in &mut c.frontends {
        f.id = if f.name == "fe1" { 2 } else { 4 };
    }
    for b in &mut c.backends {
        b.id = if b.name == "be1" { 3 } else { 4 };
        for (i, s) in b.servers.iter_mut().enumerate() {
            s.id = i as u32 + 1;
        }
    }
    c
}

fn state(status: Status, weight: u32, now: Instant) -> ServerState {
    ServerState {
        status,
        weight,
        initial_weight: weight,
        drain: false,
        checks_enabled: true,
        backup: false,
        last_reason: None,
        checked: false,
        marked_down: 0,
        marked_up: 0,
        check_failures: 0,
        last_check: None,
        health: None,
        since: now - Duration::from_secs(7),
        admin_seq: 0,
    }
}

fn checked(mut st: ServerState, health: u32, last: &'static str, desc: &'static str) -> ServerState {
    st.checked = true;
    st.health = Some(HealthCounter {
        health,
        rise: 2,
        fall: 3,
    });
    st.last_check = Some(LastCheck {
        status: last,
        code: None,
        duration: Duration::ZERO,
        desc,
    });
    if last == "L4CON" {
        st.check_failures = 1;
        st.marked_down = 1;
        st.last_reason = Some("Layer4 connection problem, info: \"Connection refused\"".into());
    }
    st
}

/// The states the fixtures were taken in: s2 and s4 refused, s3 at weight
/// 0, s5 disabled, s6 drained, li/a put in maintenance.
fn health(now: Instant) -> BTreeMap<ServerId, ServerState> {
    let mut m = BTreeMap::new();
    m.insert(
        ServerId::new("be1", "s1"),
        checked(state(Status::Up, 1, now), 4, "L4OK", "Layer4 check passed"),
    );
    m.insert(
        ServerId::new("be1", "s2"),
        checked(state(Status::Down, 1, now), 0, "L4CON", "Layer4 connection problem"),
    );
    let mut s3 = state(Status::Drain, 0, now);
    s3.initial_weight = 1;
    m.insert(ServerId::new("be1", "s3"), s3);
    let mut s4 = checked(state(Status::Down, 1, now), 0, "L4CON", "Layer4 connection problem");
    s4.backup = true;
    s4.since = now - Duration::from_secs(6);
    m.insert(ServerId::new("be1", "s4"), s4);
    m.insert(ServerId::new("be1", "s5"), state(Status::Maint, 1, now));
    let mut s6 = state(Status::Drain, 50, now);
    s6.drain = true;
    s6.since = now - Duration::from_secs(1);
    m.insert(ServerId::new("be1", "s6"), s6);
    let mut a = state(Status::Maint, 1, now);
    a.since = now - Duration::from_secs(1);
    m.insert(ServerId::new("li", "a"), a);
    m
}

fn table() -> StatsTable {
    let now = Instant::now();
    StatsTable::build(&config(), &health(now), &Counters::default(), now)
}

/// The fixture's rows, each as column name → cell text.
fn fixture_rows() -> Vec<BTreeMap<String, String>> {
    let mut lines = SHOW_STAT.lines();
    let head: Vec<&str> = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .unwrap_or_default()
        .split(',')
        .collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            head.iter()
                .zip(l.split(','))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn cell_text(c: &Cell) -> String {
    match c {
        Cell::Empty => String::new(),
        Cell::Int(v) => v.to_string(),
        Cell::Text(t) => t.clone(),
    }
}

#[test]
fn header_is_haproxys() {
    let theirs = SHOW_STAT.lines().next().unwrap_or_default();
    assert_eq!(header(), format!("{theirs}\n"));
    assert_eq!(COLUMNS.len(), 128);
}

#[test]
fn rows_are_haproxys_order_and_state_columns() {
    let t = table();
    let theirs = fixture_rows();
    let ours: Vec<(String, String)> = t.rows.iter().map(|r| (r.pxname().into(), r.svname().into())).collect();
    let order: Vec<(String, String)> = theirs
        .iter()
        .map(|r| (r["pxname"].clone(), r["svname"].clone()))
        .collect();
    assert_eq!(ours, order);
    // Columns the config and the health state decide (counters aside).
    let columns = [
        "slim",
        "status",
        "weight",
        "act",
        "bck",
        "chkfail",
        "pid",
        "iid",
        "sid",
        "type",
        "check_status",
        "check_code",
        "check_duration",
        "last_chk",
        "check_desc",
        "check_rise",
        "check_fall",
        "check_health",
        "addr",
        "mode",
        "algo",
        "uweight",
        "lastchg",
        "rate_lim",
        "-",
    ];
    for (row, want) in t.rows.iter().zip(&theirs) {
        for c in columns {
            assert_eq!(
                cell_text(row.get(c)),
                want[c],
                "{}/{} column {c}",
                row.pxname(),
                row.svname()
            );
        }
        // lbxdp doesn't count a backend's own transitions.
        if row.kind == RowKind::Server {
            assert_eq!(cell_text(row.get("chkdown")), want["chkdown"], "{}", row.svname());
        }
    }
}

#[test]
fn counters_missing_are_empty_not_zero() {
    let t = table();
    let csv = show_stat(&t, &StatFilter::default());
    let fe = csv.lines().find(|l| l.starts_with("fe1,FRONTEND,")).unwrap_or_default();
    let cells: Vec<&str> = fe.split(',').collect();
    // scur, smax, stot, bin, bout: HAProxy shows 0, an engine that can't
    // count them shows nothing.
    for i in [4, 5, 7, 8, 9] {
        assert_eq!(cells[i], "", "column {}", COLUMNS[i]);
    }
    assert_eq!(cells.len(), COLUMNS.len() + 1, "a trailing comma");
}

#[test]
fn backends_sum_their_servers() {
    let now = Instant::now();
    let mut counters = Counters::default();
    for (s, stot, bin) in [("s1", 3u64, 100u64), ("s2", 4, 50), ("s6", 5, 7)] {
        counters.servers.insert(
            ("be1".into(), s.into()),
            ServerCounters {
                stot: Some(stot),
                bin: Some(bin),
                scur: Some(1),
                ..Default::default()
            },
        );
    }
    let t = StatsTable::build(&config(), &health(now), &counters, now);
    let be = t
        .rows
        .iter()
        .find(|r| r.pxname() == "be1" && r.kind == RowKind::Backend);
    let be = be.map(|r| (r.int("stot"), r.int("bin"), r.int("scur"), r.int("bout")));
    assert_eq!(be, Some((Some(12), Some(157), Some(3), None)));
    let s2 = t.rows.iter().find(|r| r.svname() == "s2");
    assert_eq!(s2.and_then(|r| r.int("lastsess")), Some(-1));
}

#[test]
fn backend_of_maintained_servers_is_down() {
    let t = table();
    let li = t.rows.iter().find(|r| r.pxname() == "li" && r.kind == RowKind::Backend);
    assert_eq!(li.and_then(|r| r.text("status")), Some("DOWN"));
    assert_eq!(li.and_then(|r| r.int("weight")), Some(0));
}

fn lines_of(csv: &str) -> Vec<String> {
    csv.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(',').take(2).collect::<Vec<_>>().join("/"))
        .collect()
}

#[test]
fn filters_as_haproxy() {
    let t = table();
    let f = |iid, types, sid| {
        lines_of(&show_stat(
            &t,
            &StatFilter {
                iid,
                types,
                sid,
                ..StatFilter::default()
            },
        ))
    };
    assert_eq!(f(3, 4, 2), ["be1/s2"]);
    assert_eq!(f(-1, 1, -1), ["fe1/FRONTEND", "li/FRONTEND"]);
    assert_eq!(f(-1, 2, -1), ["be1/BACKEND", "li/BACKEND"]);
    // sid narrows servers only with a proxy given.
    assert_eq!(f(-1, 4, 2).len(), 7);
    assert_eq!(f(4, -1, -1), ["li/FRONTEND", "li/a", "li/BACKEND"]);
    let all = show_stat(&t, &StatFilter::default());
    assert!(all.ends_with(",\n\n"));
}

#[test]
fn csv_quotes_what_needs_it() {
    let mut c = config();
    c.backends[0].servers[0].name = "a,\"b".into();
    let now = Instant::now();
    let t = StatsTable::build(&c, &BTreeMap::new(), &Counters::default(), now);
    let csv = show_stat(&t, &StatFilter::default());
    assert!(csv.contains("\nbe1,\"a,\"\"b\",,"), "{csv}");
}

fn info() -> Info {
    let c = config();
    let counters = Counters {
        current_conns: Some(3),
        ..Default::default()
    };
    let mut i = Info::new(&c, &counters, 4242, 1_700_000_000, Duration::from_secs(90061), "host");
    i.tasks = Some(5);
    i.run_queue = Some(0);
    // The fixture's HAProxy had `description my description`.
    i.description = Some("my description".into());
    i
}

#[test]
fn show_info_has_haproxys_fields_in_order() {
    let ours = info().show_info();
    let names = |s: &str| -> Vec<String> {
        s.lines()
            .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
            .collect()
    };
    assert_eq!(names(&ours), names(SHOW_INFO));
    assert!(ours.ends_with("\n\n"));
    let mut bare = info();
    bare.description = None;
    assert!(
        !bare.show_info().contains("\ndescription:"),
        "HAProxy leaves an unset description out"
    );
    assert!(ours.contains("\nUptime: 1d 1h01m01s\n"), "{ours}");
    assert!(ours.contains("\nnode: mynode\n"));
    // hatop's regexes: one word for these, digits for those.
    for (k, word) in [
        ("Name", true),
        ("Version", true),
        ("Release_date", true),
        ("Pid", false),
    ] {
        let v = ours
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}: ")))
            .unwrap_or_default();
        assert!(!v.is_empty() && !v.contains(' '), "{k}: {v}");
        if !word {
            assert!(v.bytes().all(|b| b.is_ascii_digit()), "{k}: {v}");
        }
    }
    for k in [
        "Nbproc",
        "Process_num",
        "Maxconn",
        "CurrConns",
        "Maxpipes",
        "PipesUsed",
        "Tasks",
        "Run_queue",
    ] {
        let v = ours
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}: ")))
            .unwrap_or_default();
        assert!(!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()), "{k}: {v:?}");
    }
}

#[test]
fn servers_state_as_haproxy() {
    let now = Instant::now();
    let c = config();
    let out = show_servers_state(&c, &health(now), None, now);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1"));
    assert!(
        lines
            .next()
            .is_some_and(|h| h.starts_with("# be_id be_name srv_id srv_name srv_addr"))
    );
    // HAProxy's own lines for these states, but for the time column.
    let theirs = [
        "3 be1 1 s1 127.0.0.1 2 0 1 1 7 6 3 4 6 0 0 0 - 28090 - 0 0 - - 0",
        "3 be1 2 s2 127.0.0.1 0 0 1 1 7 8 2 0 6 0 0 0 - 28091 - 0 0 - - 0",
        "3 be1 3 s3 127.0.0.1 2 0 0 1 7 1 0 2 0 0 0 0 - 28092 - 0 0 - - 0",
        "3 be1 4 s4 127.0.0.1 0 0 1 1 6 8 2 0 6 0 0 0 - 28093 - 0 0 - - 0",
        "3 be1 5 s5 127.0.0.1 0 5 1 1 7 1 0 0 8 0 0 0 - 28094 - 0 0 - - 0",
        "3 be1 6 s6 127.0.0.1 2 8 50 50 1 1 0 2 0 0 0 0 - 28095 - 0 0 - - 0",
        "4 li 1 a 127.0.0.1 0 1 1 1 1 1 0 0 0 0 0 0 - 28096 - 0 0 - - 0",
    ];
    let ours: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    assert_eq!(ours, theirs);
    assert!(out.ends_with("\n\n"));
    assert_eq!(
        show_servers_state(&c, &health(now), Some("nope"), now),
        "Can't find backend.\n\n"
    );
    let li = show_servers_state(&c, &health(now), Some("li"), now);
    assert_eq!(li.lines().filter(|l| l.starts_with("4 li ")).count(), 1);
    assert_eq!(li.lines().count(), 4);
    assert_eq!(show_backend(&c), "# name\nbe1\nli\n\n");
}

/// A sample: its name, its labels, its value.
type Sample = (String, Vec<(String, String)>, f64);

/// Parses one sample line `name{l="v",...} value`; None when malformed.
fn parse_sample(line: &str) -> Option<Sample> {
    let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    if !word(name) {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = r.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = r.split_once("=\"")?;
            if !word(key) {
                return None;
            }
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next()? {
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        _ => return None,
                    },
                    (i, '"') => break i + 1,
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.to_string(), value));
            r = &after[end..];
            r = r.strip_prefix(',').unwrap_or(r);
        }
    }
    let value: f64 = rest.strip_prefix(' ')?.parse().ok()?;
    Some((name.to_string(), labels, value))
}

#[test]
fn prometheus_lines_parse_and_follow_haproxy() {
    let mut c = config();
    c.backends[0].servers[2].name = "we\"ird\\name".into();
    let now = Instant::now();
    let mut counters = Counters {
        xdp: Some(XdpCounters {
            actions: vec![("tx", 10), ("drop", 2)],
            drops: vec![("no_server", 2)],
            protocols: vec![],
        }),
        ..Default::default()
    };
    counters.servers.insert(
        ("be1".into(), "s1".into()),
        ServerCounters {
            scur: Some(2),
            bin: Some(100),
            ..Default::default()
        },
    );
    let t = StatsTable::build(&c, &health(now), &counters, now);
    let text = exposition(&t, &info(), counters.xdp.as_ref());
    let mut described = std::collections::HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("# HELP ") {
            described.insert(h.split(' ').next().unwrap_or_default().to_string());
            continue;
        }
        if line.starts_with("# TYPE ") {
            assert!(line.ends_with(" gauge") || line.ends_with(" counter"), "{line}");
            continue;
        }
        let s = parse_sample(line);
        assert!(s.is_some(), "unparsable: {line}");
        if let Some(s) = s {
            assert!(described.contains(&s.0), "no HELP before {line}");
            samples.push(s);
        }
    }
    let find = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v)))
            .map(|s| s.2)
    };
    let s1 = [("proxy", "be1"), ("server", "s1")];
    assert_eq!(find("haproxy_server_current_sessions", &s1), Some(2.0));
    assert_eq!(find("haproxy_server_bytes_in_total", &s1), Some(100.0));
    // Unknown: no sample rather than a 0.
    assert_eq!(find("haproxy_server_bytes_out_total", &s1), None);
    assert_eq!(
        find("haproxy_server_status", &[("server", "s1"), ("state", "UP")]),
        Some(1.0)
    );
    assert_eq!(
        find("haproxy_server_status", &[("server", "s6"), ("state", "DRAIN")]),
        Some(1.0)
    );
    assert_eq!(
        find("haproxy_server_status", &[("server", "s5"), ("state", "MAINT")]),
        Some(1.0)
    );
    assert_eq!(
        find("haproxy_server_status", &[("server", "s2"), ("state", "DOWN")]),
        Some(1.0)
    );
    assert_eq!(
        find("haproxy_server_status", &[("server", "we\"ird\\name"), ("state", "UP")]),
        Some(1.0)
    );
    assert_eq!(find("haproxy_server_weight", &[("server", "s6")]), Some(50.0));
    assert_eq!(
        find("haproxy_server_check_failures_total", &[("server", "s2")]),
        Some(1.0)
    );
    assert_eq!(
        find("haproxy_server_check_status", &[("server", "s2"), ("state", "L4CON")]),
        Some(1.0)
    );
    assert_eq!(
        find("haproxy_backend_status", &[("proxy", "li"), ("state", "DOWN")]),
        Some(1.0)
    );
    assert_eq!(
        find(
            "haproxy_backend_agg_server_status",
            &[("proxy", "be1"), ("state", "DOWN")]
        ),
        Some(2.0)
    );
    assert_eq!(
        find("haproxy_frontend_status", &[("proxy", "fe1"), ("state", "UP")]),
        Some(1.0)
    );
    assert_eq!(
        find("haproxy_frontend_limit_sessions", &[("proxy", "fe1")]),
        Some(1000.0)
    );
    assert_eq!(find("haproxy_process_current_connections", &[]), Some(3.0));
    assert_eq!(find("lbxdp_xdp_packets_total", &[("action", "drop")]), Some(2.0));
    assert_eq!(
        find("lbxdp_xdp_dropped_packets_total", &[("reason", "no_server")]),
        Some(2.0)
    );
    assert!(text.contains("haproxy_server_check_duration_seconds{proxy=\"be1\",server=\"s1\"} 0.000000\n"));
}

#[test]
fn page_shows_every_server_and_escapes() {
    let mut c = config();
    c.backends[0].servers[1].name = "<b>&x".into();
    let now = Instant::now();
    let mut h = health(now);
    if let Some(st) = h.remove(&ServerId::new("be1", "s2")) {
        h.insert(ServerId::new("be1", "<b>&x"), st);
    }
    let t = StatsTable::build(&c, &h, &Counters::default(), now);
    let page = StatsPage {
        uri: "/stats".into(),
        refresh: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    let html = render(&t, &info(), &page, true, Some("DONE"));
    assert!(!html.contains("<b>&x"));
    assert!(html.contains("&lt;b&gt;&amp;x"));
    let (class, words) = crate::runtime::http::status_notice("DONE").expect("DONE is a notice");
    assert!(html.contains(&format!("<div class={class}>")), "the notice's class");
    assert!(html.contains(words), "the notice's words");
    assert!(
        !render(&t, &info(), &page, true, Some("<bad>")).contains("bad"),
        "an unknown code shows nothing"
    );
    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
    for (server, class, state) in [
        ("s1", "active_up", "7s UP"),
        ("&lt;b&gt;&amp;x", "active_down", "7s DOWN"),
        ("s3", "active_no_check", "<i>no check</i>"),
        ("s4", "backup_down", "6s DOWN"),
        ("s5", "maintain", "7s MAINT"),
        ("s6", "active_draining", "1s DRAIN"),
        ("a", "maintain", "1s MAINT"),
    ] {
        let row = html
            .lines()
            .find(|l| l.contains(&format!("value=\"{server}\"")))
            .unwrap_or_default();
        assert!(row.starts_with(&format!("<tr class=\"{class}\">")), "{server}: {row}");
        assert!(row.contains(&format!("<td class=ac>{state}")), "{server}: {row}");
    }
    assert!(html.contains("<input type=\"hidden\" name=\"b\" value=\"#3\">"));
    assert!(html.contains("<option value=\"hdown\">"));
    assert!(html.contains("<form method=\"post\" action=\"/stats\">"));
    let plain = render(&t, &info(), &page, false, None);
    assert!(!plain.contains("<form"));
    assert!(plain.contains(">s1</a>"));
}

#[test]
fn json_leaves_empty_cells_out() {
    let t = table();
    let json = t.to_json();
    let rows = json.as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), t.rows.len());
    let fe = &rows[0];
    assert_eq!(fe["pxname"], "fe1");
    assert_eq!(fe["slim"], 1000);
    assert!(fe.get("scur").is_none());
    assert!(fe.get("qcur").is_none());
}
