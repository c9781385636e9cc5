//! A bounded spoofed SYN flood (trafgen) against `tcp-request connection`
//! rules, through lbxdp in XDP mode, lbxdp in proxy mode and real HAProxy 2.6
//! on the same haproxy.cfg: a blocklist of the flood's prefix (`reject`, and
//! `silent-drop`), and a stick table that rejects a source past
//! `sc0_conn_rate gt N` with the flood from four sources. While it runs,
//! legitimate clients (outside the flood's prefix, and `accept`ed before
//! tracking) keep getting answers, a real client inside the blocked prefix is
//! turned away, and `show stat` accounts for it (`dcon`, and `dreq` for
//! HAProxy's `silent-drop`).
//!
//! The flood's sources are in 198.19.0.0/16 (testbed space, see
//! lbxdp-testbed); the LB routes them back through the client, whose kernel
//! drops what comes back for addresses it hasn't got (SYN-ACKs, RSTs). Two of
//! those addresses are the client's own, for the real connections from inside
//! the prefix. Only XDP sees the flood's SYNs as connections: the proxies'
//! kernel answers them (SYN cookies once the backlog fills) and, since no
//! spoofed handshake ever completes, their rules never run for them, so their
//! denied counts are the real connections alone. Speed under the flood is the
//! bench's (`cargo xtask bench --flood`); here only behaviour is asserted.
//! Needs root (the testbed); skips loudly without it.
mod common;

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use common::runtime::{Lb, Stat, Target};
use lbxdp_testbed::{Host, Layout, Testbed};

/// SYNs per flood, and their rate: 3 s of flood.
const FLOOD: u64 = 150_000;
const FLOOD_RATE: &str = "50000pps";
/// The flood's prefix: blocked by the blocklist configs.
const FLOOD_NET: &str = "198.19.0.0/16";
/// A real client inside the blocked prefix (an address of the client's).
const BLOCKED_SRC: &str = "198.19.255.1";
/// One of the rate-limit flood's four sources (198.19.0.1-4), also an address of the client's.
const FLOODER_SRC: &str = "198.19.0.1";
/// `reject if { sc0_conn_rate gt RATE_LIMIT }`.
const RATE_LIMIT: usize = 10;
/// At most this many legitimate requests while the flood runs.
const MAX_LEGIT: usize = 300;

/// Two floods at once on two cores would measure each other: one at a time.
static ONE_FLOOD_AT_A_TIME: Mutex<()> = Mutex::new(());

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rules {
    /// `acl blocked src -f blocklist.lst` + `tcp-request connection reject if blocked`.
    Reject,
    /// The same with `silent-drop`.
    SilentDrop,
    /// `accept` for the legitimate clients' network, then `track-sc0 src` and
    /// `reject if { sc0_conn_rate gt RATE_LIMIT }`; the flood from four sources.
    RateLimit,
}

fn config(tb: &Testbed, admin: &str, list: &str, rules: Rules) -> String {
    let frontend_rules = match rules {
        Rules::Reject | Rules::SilentDrop => format!(
            "    acl blocked src -f {list}\n    tcp-request connection {} if blocked\n",
            if rules == Rules::Reject {
                "reject"
            } else {
                "silent-drop"
            }
        ),
        Rules::RateLimit => format!(
            "    stick-table type ip size 100k expire 30s store conn_rate(10s)\n\
             \x20   acl trusted src {}/24\n\
             \x20   tcp-request connection accept if trusted\n\
             \x20   tcp-request connection track-sc0 src\n\
             \x20   tcp-request connection reject if {{ sc0_conn_rate gt {RATE_LIMIT} }}\n",
            tb.client.v4()
        ),
    };
    let mut s = format!(
        "global\n    stats socket {admin} mode 600 level admin\n\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend web\n    bind {}:80\n{frontend_rules}    default_backend be\n\nbackend be\n",
        tb.lb.v4()
    );
    for (i, b) in tb.backends.iter().enumerate() {
        s.push_str(&format!(
            "    server s{} {}:80 check inter 2000 fall 2 rise 2\n",
            i + 1,
            b.v4()
        ));
    }
    s
}

/// `ip ARGS` in `host`'s namespace; panics on failure.
fn ip(tb: &Testbed, host: &Host, args: &[&str]) {
    let out = tb
        .command(host, "ip")
        .args(args)
        .output_timeout(Duration::from_secs(5))
        .expect("ip");
    assert!(
        out.status.success(),
        "ip {args:?} in {}: {}",
        host.name,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mac(tb: &Testbed, host: &Host) -> String {
    let out = tb
        .command(host, "ip")
        .args(["-j", "link", "show", "dev", "eth0"])
        .output_timeout(Duration::from_secs(5))
        .expect("ip link");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j link");
    v[0]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no MAC for {}'s eth0: {v}", host.name))
        .to_string()
}

/// trafgen's packet: a TCP SYN from `src` (four bytes, trafgen's functions
/// allowed) and a random port to the VIP's port 80.
fn syn_conf(lb_mac: &str, client_mac: &str, src: &str, vip: [u8; 4]) -> String {
    let bytes = |m: &str| m.split(':').map(|b| format!("0x{b}")).collect::<Vec<_>>().join(", ");
    let [a, b, c, d] = vip;
    format!(
        "{{\n  {}, {}, 0x08, 0x00,\n\
         0x45, 0x00, const16(40), drnd(2), 0x40, 0x00, 64, 6, csumip(14, 33),\n\
         {src}, {a}, {b}, {c}, {d},\n\
         drnd(2), const16(80), drnd(4), const32(0), 0x50, 0x02, const16(512), csumtcp(14, 34), const16(0)\n}}\n",
        bytes(lb_mac),
        bytes(client_mac),
    )
}

/// One request on a new connection from the client (from `src` when given):
/// the answering server's body, or curl's exit code and message.
fn get(tb: &Testbed, src: Option<&str>) -> Result<String, String> {
    let mut cmd = tb.command(&tb.client, "curl");
    cmd.args(["-sS", "--connect-timeout", "3", "--max-time", "5"]);
    if let Some(src) = src {
        cmd.args(["--interface", src]);
    }
    let out = cmd
        .arg(format!("http://{}/", tb.lb.v4()))
        .output_timeout(Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "curl exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn flood_against_rules(test: &str, target: Target, rules: Rules) {
    let _one = ONE_FLOOD_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let name = format!("{test}_{}", target.name());
    if target == Target::Haproxy && !std::path::Path::new("/usr/sbin/haproxy").exists() {
        eprintln!("\n!!! SKIPPED {name}: /usr/sbin/haproxy is missing (`cargo xtask setup` installs it). !!!\n");
        return;
    }
    let Some(mut tb) = common::testbed(&name, Layout::OneArm, 3, true) else {
        return;
    };
    let (client, lb) = (tb.client.clone(), tb.lb.clone());
    // Replies to the flood's sources go back to the client, which drops them.
    ip(&tb, &lb, &["route", "add", FLOOD_NET, "via", &client.v4().to_string()]);
    for src in [BLOCKED_SRC, FLOODER_SRC] {
        ip(&tb, &client, &["addr", "add", &format!("{src}/32"), "dev", "eth0"]);
    }
    let list = tb.dir().join("blocklist.lst");
    std::fs::write(&list, format!("# the flood's prefix\n{FLOOD_NET}\n")).expect("blocklist.lst");
    let admin = tb.dir().join("admin.sock");
    let cfg = config(&tb, &admin.to_string_lossy(), &list.to_string_lossy(), rules);
    let lb_run = Lb::start(&mut tb, target, &cfg, &admin);
    let tb = &tb;

    // Before the flood: the rules work on real connections.
    let first = get(tb, None);
    assert!(first.is_ok(), "a legitimate client got no answer: {first:?}");
    let mut turned_away = 0;
    match rules {
        Rules::Reject | Rules::SilentDrop => {
            let blocked = get(tb, Some(BLOCKED_SRC));
            assert!(blocked.is_err(), "{BLOCKED_SRC} is blocked, yet got {blocked:?}");
            turned_away += 1;
        }
        Rules::RateLimit => {
            let answers: Vec<Result<String, String>> =
                (0..RATE_LIMIT + 5).map(|_| get(tb, Some(FLOODER_SRC))).collect();
            let ok = answers.iter().filter(|a| a.is_ok()).count();
            assert_eq!(
                ok,
                RATE_LIMIT,
                "{FLOODER_SRC}: {} connections within 10 s, at most {RATE_LIMIT} may pass: {answers:?}",
                answers.len()
            );
            turned_away += answers.len() - ok;
        }
    }

    let src = match rules {
        Rules::Reject | Rules::SilentDrop => "198, 19, drnd(1), drnd(1)",
        Rules::RateLimit => "198, 19, 0, dinc(1, 4)",
    };
    let conf = tb.dir().join("syn.trafgen");
    std::fs::write(&conf, syn_conf(&mac(tb, &lb), &mac(tb, &client), src, lb.v4().octets())).expect("trafgen conf");
    let conf = conf.to_string_lossy().into_owned();
    let rx_before = rx_packets(tb, &lb);
    let started = Instant::now();
    let during: Vec<Result<String, String>> = std::thread::scope(|scope| {
        let flooding = scope.spawn(|| common::clients::trafgen(tb, &conf, FLOOD, FLOOD_RATE));
        let mut answers = Vec::new();
        while !flooding.is_finished() && answers.len() < MAX_LEGIT {
            answers.push(get(tb, None));
        }
        flooding.join().expect("the flood's thread");
        answers
    });
    let flood_secs = started.elapsed().as_secs_f64();
    // What reached the LB's interface: a veth in native XDP mode drops
    // frames its ring has no room for before the program sees them (the
    // RSTs that reject sends back take their share of the two cores).
    let arrived = rx_packets(tb, &lb).saturating_sub(rx_before);
    let after = get(tb, None);

    let stat = Stat::parse(&clients_socat(tb, &admin, "show stat"));
    // HAProxy 2.6 counts a connection `reject` in dcon and a `silent-drop`
    // in dreq (its silent-drop action counts a denied request at any
    // layer); lbxdp counts them as it does, in both modes.
    let denied = ["dcon", "dreq"]
        .iter()
        .map(|c| stat.num("web", "FRONTEND", c).unwrap_or(0))
        .sum::<u64>();
    let to_servers = stat.num("be", "BACKEND", "stot").unwrap_or(0);
    let failed: Vec<&String> = during.iter().filter_map(|a| a.as_ref().err()).collect();
    eprintln!(
        "{name}: flood of {FLOOD} SYNs in {flood_secs:.1} s; {} legitimate requests during it, {} failed; \
         {arrived} packets reached the LB; denied (dcon + dreq) {denied}, sessions to the servers {to_servers}",
        during.len(),
        failed.len()
    );

    assert!(
        during.len() >= 3,
        "only {} legitimate requests while the flood ran {flood_secs:.1} s",
        during.len()
    );
    assert!(
        failed.is_empty(),
        "legitimate requests failed during the flood: {failed:?}"
    );
    assert!(after.is_ok(), "no answer after the flood: {after:?}");
    // None of the flood reached a server (but, under the rate limit, what
    // the four sources may each send before their rate is over N).
    let legit = 2 + during.len() as u64;
    assert!(
        to_servers <= legit + 5 * RATE_LIMIT as u64,
        "{to_servers} sessions to the servers for {legit} legitimate requests:\n{}",
        stat.text
    );
    if target == Target::Xdp {
        // XDP decides on every SYN: the flood's that reached it are denied
        // there (a few of the rate-limited sources' may pass before their
        // rate is over N). The legitimate requests' packets, a dozen each,
        // arrived too.
        let flood_arrived = arrived.saturating_sub(12 * legit);
        assert!(
            flood_arrived >= FLOOD / 2,
            "only {arrived} packets reached the LB of a {FLOOD} SYN flood"
        );
        let floor = flood_arrived * 9 / 10 + turned_away as u64;
        assert!(
            denied >= floor,
            "denied {denied}: XDP must deny the flood's SYNs that reached it ({flood_arrived} of {FLOOD}; at least \
             {floor}):\n{}",
            stat.text
        );
    } else {
        // The proxies' rules see completed handshakes only: the real ones.
        assert!(
            denied >= turned_away as u64 && denied < turned_away as u64 + FLOOD / 100,
            "denied {denied}: the {} must count the {turned_away} real connection(s) it turned away, and can't see \
             the flood's SYNs:\n{}",
            target.name(),
            stat.text
        );
    }
    drop(lb_run);
}

/// Frames `host`'s eth0 received so far (its namespace's /proc/net/dev).
fn rx_packets(tb: &Testbed, host: &Host) -> u64 {
    // thread-self: /proc/self/net would be the main thread's namespace.
    let text = tb
        .in_netns(host, || Ok(std::fs::read_to_string("/proc/thread-self/net/dev")?))
        .expect("/proc/net/dev");
    text.lines()
        .find_map(|l| {
            let (name, rest) = l.split_once(':')?;
            (name.trim() == "eth0").then(|| rest.split_whitespace().nth(1)?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no eth0 in {}'s /proc/net/dev:\n{text}", host.name))
}

fn clients_socat(tb: &Testbed, sock: &std::path::Path, line: &str) -> String {
    common::clients::socat(tb, &tb.lb, sock, line)
}

fn blocklist_reject(target: Target) {
    flood_against_rules("blocklist_reject", target, Rules::Reject);
}

fn blocklist_silent_drop(target: Target) {
    flood_against_rules("blocklist_silent_drop", target, Rules::SilentDrop);
}

fn rate_limit(target: Target) {
    flood_against_rules("rate_limit", target, Rules::RateLimit);
}

each_target!(blocklist_reject, blocklist_silent_drop, rate_limit);
