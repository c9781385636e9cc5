//! A spoofed flood through full NAT: 300k TCP ACKs, then 300k SYNs, from
//! random 198.18.x.y addresses and ports (trafgen, bounded in count and
//! rate), while a client with Linux's default settings makes new
//! connections. Only SYNs make state, half-open state lets go within
//! seconds, so right after the flood the legitimate rate is back.
mod common;

use std::time::Duration;

use lbxdp_testbed::{Host, Layout, Testbed};

const FLOOD: u64 = 300_000;
const FLOOD_RATE: &str = "100000pps";
const SLICE_SECS: u64 = 5;

fn mac(tb: &Testbed, host: &Host) -> [u8; 6] {
    let out = tb
        .command(host, "ip")
        .args(["-br", "link", "show", "eth0"])
        .output_timeout(Duration::from_secs(5))
        .expect("ip link");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let word = text
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no MAC in {text:?}"));
    let mut m = [0u8; 6];
    for (i, b) in word.split(':').enumerate().take(6) {
        m[i] = u8::from_str_radix(b, 16).unwrap_or_else(|e| panic!("MAC {word}: {e}"));
    }
    m
}

fn bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:#04x}")).collect::<Vec<_>>().join(", ")
}

/// A trafgen packet: TCP with `flags` from a random 198.18.x.y and port to the VIP.
fn trafgen_conf(dst: [u8; 6], src: [u8; 6], vip: [u8; 4], flags: u8) -> String {
    format!(
        "{{\n  {}, {}, 0x08, 0x00,\n\
         0x45, 0x00, const16(40), drnd(2), 0x40, 0x00, 64, 6, csumip(14, 33),\n\
         198, 18, drnd(1), drnd(1), {},\n\
         drnd(2), const16(80), drnd(4), drnd(4), 0x50, {flags:#04x}, const16(512), csumtcp(14, 34), const16(0)\n}}\n",
        bytes(&dst),
        bytes(&src),
        bytes(&vip)
    )
}

/// One bounded wrk run of new connections from the default client.
fn wrk(tb: &Testbed, secs: u64) -> common::Wrk {
    common::wrk_close(tb, &format!("http://{}/", tb.lb.v4()), secs, 1)
}

#[test]
fn legitimate_clients_keep_their_rate_through_a_spoofed_flood() {
    let Some(tb) = common::plain_testbed(
        "legitimate_clients_keep_their_rate_through_a_spoofed_flood",
        Layout::OneArm,
        3,
    ) else {
        return;
    };
    let mut agent = common::start_default(&tb, &common::web_config(&tb, "check inter 2000 fall 2 rise 2"));

    let (lb_mac, client_mac, vip) = (mac(&tb, &tb.lb), mac(&tb, &tb.client), tb.lb.v4().octets());
    let mut confs = Vec::new();
    for (name, flags) in [("ack", 0x10u8), ("syn", 0x02)] {
        let p = tb.dir().join(format!("{name}.trafgen"));
        std::fs::write(&p, trafgen_conf(lb_mac, client_mac, vip, flags)).expect("trafgen conf");
        confs.push(p.to_string_lossy().into_owned());
    }

    let before = wrk(&tb, SLICE_SECS);
    // During: new connections while the flood runs (bounded: 2 x 300k at 100 kpps).
    let during = std::thread::scope(|scope| {
        let during = scope.spawn(|| wrk(&tb, SLICE_SECS));
        flood(&tb, &confs);
        during.join().expect("wrk thread")
    });
    let after = wrk(&tb, SLICE_SECS);
    let log = agent.log();
    let report = agent.stop();
    let fe = &report["frontends"][0];
    eprintln!(
        "legitimate new connections/s: before {:.0} (errors {}), during {:.0} (errors {}), after {:.0} (errors {}); after/before {:.2}",
        before.rate,
        before.socket_errors(),
        during.rate,
        during.socket_errors(),
        after.rate,
        after.socket_errors(),
        after.rate / before.rate
    );
    eprintln!("frontend counters: {fe}");

    assert!(
        before.rate > 100.0,
        "hardly any traffic before the flood ({:.0}/s)",
        before.rate
    );
    assert!(
        after.rate >= 0.8 * before.rate,
        "right after the flood {:.0}/s, below 80% of {:.0}/s before it",
        after.rate,
        before.rate
    );
    // The ACKs got no state (most of them; a random tuple may hit a live flow).
    let no_flow = fe["drop_no_flow"].as_u64().unwrap_or(0);
    assert!(
        no_flow >= FLOOD * 9 / 10,
        "spoofed ACKs must be dropped without a flow: {fe}"
    );
    let downs: Vec<&str> = log.lines().filter(|l| l.contains(" is DOWN")).collect();
    assert!(downs.is_empty(), "healthy servers went DOWN:\n{}", downs.join("\n"));
}

/// The spoofed ACKs, then the SYNs, from the client's interface.
fn flood(tb: &Testbed, confs: &[String]) {
    for conf in confs {
        common::clients::trafgen(tb, conf, FLOOD, FLOOD_RATE);
    }
}
