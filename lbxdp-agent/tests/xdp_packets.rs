//! The XDP program on hand-crafted frames, through BPF_PROG_TEST_RUN: every
//! kind of malformed or odd input gets a defined verdict and moves a counter,
//! and the NAT rewrite leaves valid IPv4 header and TCP/UDP checksums
//! (computed from scratch by the fixtures, lbxdp_testbed::frames,
//! independently of the eBPF code).
//!
//! Needs root (CAP_BPF); skips loudly without it. Each test runs on a thread
//! in a network namespace of its own: a test run's packet comes in on that
//! namespace's loopback, and the program's bpf_fib_lookup sees only the
//! routes and neighbours the test sets up there, so verdicts do not depend on
//! the host's network.
mod common;

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    process::Command,
};

use common::skip_without_root;
use lbxdp_agent::datapath::{Datapath, NatMode, Sizes, plan::PlanServer};
use lbxdp_common::{
    DEFAULT_NAT_PORT_COUNT, DEFAULT_NAT_PORT_FIRST, FLOW_CLOSING, FLOW_HALF_OPEN, FLOW_SYN_ACKED, FlowKey,
    FrontendStats, Proto, Settings, XDP_PROGRAM,
};
use lbxdp_testbed::frames::{
    CLIENT_PORT, CLIENT4, CLIENT6, ETH_ARP, ETH_IP, ETH_IPV6, IP_MF, IPPROTO_DSTOPTS, IPPROTO_HOPOPTS, IPPROTO_ICMP,
    IPPROTO_ROUTING, IPPROTO_TCP, IPPROTO_UDP, IcmpSeen, PEER_MAC, SERVER_PORT, SERVERS4, SERVERS6, SNAT4, SNAT6, Seen,
    TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, V4, V6, VIP_PORT, VIP4, VIP6, checksum, dissect, dissect_icmp, eth,
    frag_ext, icmp_error, ip_frame, opts_ext, syn4, syn6, tcp, udp, udp4, udp6,
};

const XDP_ABORTED: u32 = 0;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;

const TABLE: u32 = 251;
/// The destination MAC the FIB gives for a server in `forwarding_verdicts_follow_the_fib`.
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];
/// The LB's interface towards the servers in `forwarding_verdicts_follow_the_fib`.
const V0_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];

// ---------------------------------------------------------------------------
// Running in a namespace of our own
// ---------------------------------------------------------------------------

/// Runs `f` on a thread that has unshared its network namespace: a fresh one
/// with only a loopback (down, no routes). The namespace goes with the thread.
fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// `ip ARGS` in the calling thread's namespace (a child inherits it).
fn ip(args: &str) {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("running ip");
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a sysctl of the calling thread's namespace.
fn sysctl(path: &str, value: &str) {
    std::fs::write(format!("/proc/sys/{path}"), value).unwrap_or_else(|e| panic!("writing {path}: {e}"));
}

// ---------------------------------------------------------------------------
// The balancer under test
// ---------------------------------------------------------------------------

fn server(id: u32, name: &str, addr: IpAddr) -> PlanServer {
    PlanServer {
        id,
        name: name.into(),
        addr,
        port: SERVER_PORT,
        weight: 1,
        backup: false,
        disabled: false,
        source: None,
    }
}

fn v4_servers() -> Vec<PlanServer> {
    vec![
        server(0, "s4a", SERVERS4[0].into()),
        server(1, "s4b", SERVERS4[1].into()),
    ]
}

fn v6_servers() -> Vec<PlanServer> {
    vec![
        server(2, "s6a", SERVERS6[0].into()),
        server(3, "s6b", SERVERS6[1].into()),
    ]
}

/// Loads the program (not attached) and programs it like the agent would:
/// frontend 0 = 198.18.0.2:80 -> backend 0 (two IPv4 servers), frontend 1 =
/// [fd00:198:18::2]:80 -> backend 1 (two IPv6 servers), full NAT, all up.
fn balancer() -> Datapath {
    let sizes = Sizes {
        backends: 2,
        servers: 4,
        table_size: TABLE,
        flows: 1024,
        ..Sizes::default()
    };
    let mut dp = Datapath::load(sizes, false, XDP_PROGRAM).expect("loading the XDP program (verifier)");
    dp.set_settings(&Settings::with_default_timeouts(TABLE))
        .expect("settings");
    for (backend, servers, snat) in [
        (0, v4_servers(), IpAddr::V4(SNAT4)),
        (1, v6_servers(), IpAddr::V6(SNAT6)),
    ] {
        for s in &servers {
            dp.set_server(s, snat, true).expect("server");
        }
        let weights: Vec<u32> = servers.iter().map(|s| s.weight).collect();
        dp.set_maglev(backend, &servers, &weights)
            .expect("maglev table into the map");
    }
    dp.add_frontend(VIP4.into(), VIP_PORT, 0, 0, NatMode::Full, false)
        .expect("frontend v4");
    dp.add_frontend(VIP6.into(), VIP_PORT, 1, 1, NatMode::Full, false)
        .expect("frontend v6");
    dp
}

fn server_addr(id: u32) -> IpAddr {
    v4_servers()
        .into_iter()
        .chain(v6_servers())
        .find(|s| s.id == id)
        .map(|s| s.addr)
        .expect("a server id we programmed")
}

/// A segment on veth v0 (MAC `V0_MAC`, 198.18.0.1/15) for the FIB to send
/// to, and forwarding on lo, where test runs' packets come in.
fn lan_on_v0() {
    sysctl("net/ipv4/conf/lo/forwarding", "1");
    ip("link add v0 type veth peer name v1");
    ip("link set v0 address 02:00:00:00:00:0a");
    ip("link set v0 up");
    ip("link set v1 up");
    ip("addr add 198.18.0.1/15 dev v0");
}

// ---------------------------------------------------------------------------
// Reading a frame back
// ---------------------------------------------------------------------------

/// The frame as the program left it, read back; a checksum it left wrong
/// (or a frame it cut short) fails the test.
fn dissect_and_verify(f: &[u8]) -> Seen {
    dissect(f).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The ICMP error as the program left it, every checksum verified.
fn dissect_icmp_and_verify(f: &[u8]) -> IcmpSeen {
    dissect_icmp(f).unwrap_or_else(|e| panic!("{e:#}"))
}

// ---------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------

struct Snapshot {
    proto: Vec<u64>,
    fe: Vec<FrontendStats>,
}

fn snapshot(dp: &Datapath) -> Snapshot {
    let c = dp.counters().expect("PROTO_STATS");
    Snapshot {
        proto: Proto::ALL.iter().map(|p| c.get(*p).packets).collect(),
        fe: dp.frontend_stats(2).expect("FRONTEND_STATS"),
    }
}

fn fe_delta(a: &FrontendStats, b: &FrontendStats) -> FrontendStats {
    FrontendStats {
        packets: b.packets - a.packets,
        bytes: b.bytes - a.bytes,
        new_flows: b.new_flows - a.new_flows,
        drop_no_server: b.drop_no_server - a.drop_no_server,
        drop_no_port: b.drop_no_port - a.drop_no_port,
        drop_no_flow: b.drop_no_flow - a.drop_no_flow,
        drop_table_full: b.drop_table_full - a.drop_table_full,
        denied_conn: b.denied_conn - a.denied_conn,
        denied_silent: b.denied_silent - a.denied_silent,
        drop_no_neigh: b.drop_no_neigh - a.drop_no_neigh,
        drop_too_big: b.drop_too_big - a.drop_too_big,
        icmp_errors: b.icmp_errors - a.icmp_errors,
        passed: b.passed - a.passed,
    }
}

/// What a frontend's counters should have moved by for one balanced packet.
fn balanced(len: usize, new_flow: bool, passed: bool, no_neigh: bool) -> FrontendStats {
    FrontendStats {
        packets: 1,
        bytes: len as u64,
        new_flows: u64::from(new_flow),
        drop_no_neigh: u64::from(no_neigh),
        passed: u64::from(passed),
        ..FrontendStats::default()
    }
}

/// The counters for a TCP segment that full NAT refused for having no flow.
fn no_flow(len: usize) -> FrontendStats {
    FrontendStats {
        packets: 1,
        bytes: len as u64,
        drop_no_flow: 1,
        ..FrontendStats::default()
    }
}

/// The counters for a SYN that found no free NAT port.
fn no_port(len: usize) -> FrontendStats {
    FrontendStats {
        packets: 1,
        bytes: len as u64,
        drop_no_port: 1,
        ..FrontendStats::default()
    }
}

/// Full NAT's source ports with the default settings.
const NAT_PORTS: std::ops::RangeInclusive<u16> =
    DEFAULT_NAT_PORT_FIRST..=DEFAULT_NAT_PORT_FIRST + (DEFAULT_NAT_PORT_COUNT - 1);

fn action_name(a: u32) -> &'static str {
    match a {
        XDP_ABORTED => "XDP_ABORTED",
        XDP_DROP => "XDP_DROP",
        XDP_PASS => "XDP_PASS",
        XDP_TX => "XDP_TX",
        XDP_REDIRECT => "XDP_REDIRECT",
        _ => "unknown",
    }
}

/// Runs one frame and checks its verdict and exactly which counters moved:
/// each protocol in `protos` by one packet, nothing else, and the two
/// frontends by `fe`. Returns the frame as the program left it.
fn expect(dp: &Datapath, case: &str, frame: &[u8], action: u32, protos: &[Proto], fe: [FrontendStats; 2]) -> Vec<u8> {
    let before = snapshot(dp);
    let (got, out) = dp
        .test_run(frame)
        .unwrap_or_else(|e| panic!("{case}: test run failed: {e}"));
    let after = snapshot(dp);
    assert_eq!(
        action_name(got),
        action_name(action),
        "{case}: verdict {got}, expected {action}"
    );
    assert_eq!(out.len(), frame.len(), "{case}: the frame changed length");
    for p in Proto::ALL {
        let moved = after.proto[p as usize] - before.proto[p as usize];
        let want = protos.iter().filter(|q| **q == p).count() as u64;
        assert_eq!(
            moved,
            want,
            "{case}: PROTO_STATS[{}] moved by {moved}, expected {want}",
            p.name()
        );
    }
    for (i, want) in fe.iter().enumerate() {
        assert_eq!(
            fe_delta(&before.fe[i], &after.fe[i]),
            *want,
            "{case}: frontend {i}'s counters"
        );
    }
    println!("{case:<55} -> {}", action_name(got));
    out
}

const NONE: FrontendStats = FrontendStats {
    packets: 0,
    bytes: 0,
    new_flows: 0,
    drop_no_server: 0,
    drop_no_port: 0,
    drop_no_flow: 0,
    drop_table_full: 0,
    denied_conn: 0,
    denied_silent: 0,
    drop_no_neigh: 0,
    drop_too_big: 0,
    icmp_errors: 0,
    passed: 0,
};

fn client_key(src: IpAddr, dst: IpAddr, proto: u8) -> FlowKey {
    let (src, family) = lbxdp_agent::datapath::addr_bytes(src);
    let (dst, _) = lbxdp_agent::datapath::addr_bytes(dst);
    FlowKey {
        src,
        dst,
        sport: CLIENT_PORT.to_be(),
        dport: VIP_PORT.to_be(),
        proto,
        family,
        pad: [0; 2],
    }
}

fn flow_of(dp: &Datapath, key: &FlowKey) -> Option<lbxdp_common::Flow> {
    dp.flows()
        .expect("reading FLOWS")
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, f)| f)
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

/// Frames the kernel itself refuses to run: XDP never sees less than an
/// Ethernet header, and BPF_PROG_TEST_RUN returns EINVAL for them.
#[test]
fn frames_shorter_than_ethernet_are_refused_by_the_kernel() {
    if skip_without_root("frames_shorter_than_ethernet_are_refused_by_the_kernel") {
        return;
    }
    in_fresh_netns(|| {
        let dp = balancer();
        for len in [0usize, 1, 13] {
            let err = dp
                .test_run(&vec![0u8; len])
                .expect_err("a frame shorter than 14 bytes must be refused");
            assert!(err.to_string().contains("Invalid argument"), "{len} bytes: {err}");
        }
        // 14 bytes run: the program's own Ethernet bounds check is the one that
        // matters for them, and it passes a bare header of an unknown type.
        expect(
            &dp,
            "bare Ethernet header, EtherType 0",
            &[0u8; 14],
            XDP_PASS,
            &[Proto::OtherL3],
            [NONE, NONE],
        );
    });
}

#[test]
fn malformed_and_odd_frames_get_defined_verdicts() {
    if skip_without_root("malformed_and_odd_frames_get_defined_verdicts") {
        return;
    }
    in_fresh_netns(|| {
        let dp = balancer();
        use Proto::*;

        // --- L2 ---
        let mut arp = eth(ETH_ARP);
        arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&PEER_MAC);
        arp.extend_from_slice(&CLIENT4.octets());
        arp.extend_from_slice(&[0; 6]);
        arp.extend_from_slice(&VIP4.octets());
        expect(&dp, "ARP request for the VIP", &arp, XDP_PASS, &[Arp], [NONE, NONE]);
        let mut unknown = eth(0x88b5);
        unknown.extend_from_slice(&[0xab; 46]);
        expect(
            &dp,
            "unknown EtherType 0x88b5",
            &unknown,
            XDP_PASS,
            &[OtherL3],
            [NONE, NONE],
        );
        // 802.1Q: not parsed, so a tagged packet to the VIP goes to the stack.
        let mut vlan = syn4().frame();
        vlan.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
        expect(
            &dp,
            "802.1Q-tagged TCP SYN to the VIP",
            &vlan,
            XDP_PASS,
            &[OtherL3],
            [NONE, NONE],
        );

        // --- IPv4 header ---
        expect(
            &dp,
            "IPv4 EtherType, no IP header",
            &eth(ETH_IP),
            XDP_PASS,
            &[Ipv4, Malformed],
            [NONE, NONE],
        );
        let mut f = syn4().frame();
        f.truncate(14 + 19);
        expect(
            &dp,
            "IPv4 header cut at 19 bytes",
            &f,
            XDP_PASS,
            &[Ipv4, Malformed],
            [NONE, NONE],
        );
        for ihl in [0u8, 4] {
            let mut f = syn4().frame();
            f[14] = 0x40 | ihl;
            expect(
                &dp,
                &format!("IPv4 IHL {ihl} (< 5) to the VIP"),
                &f,
                XDP_PASS,
                &[Ipv4, Malformed],
                [NONE, NONE],
            );
        }
        let mut f = udp4().frame();
        f[14] = 0x4f; // 60 bytes of header; the packet has 20 + 8 + payload after Ethernet
        f.truncate(14 + 40);
        expect(
            &dp,
            "IPv4 IHL 15, header longer than the frame",
            &f,
            XDP_PASS,
            &[Ipv4, Malformed],
            [NONE, NONE],
        );
        let mut f = syn4().frame();
        f[14] = 0x65;
        expect(
            &dp,
            "IPv4 EtherType with IP version 6",
            &f,
            XDP_PASS,
            &[Ipv4, Malformed],
            [NONE, NONE],
        );

        // --- IPv4 fragments: never balanced, whatever the L4 ---
        let mut p = udp4();
        p.frag = IP_MF;
        let f = p.frame();
        expect(
            &dp,
            "IPv4 first fragment (MF, offset 0), UDP to VIP",
            &f,
            XDP_PASS,
            &[Ipv4, OtherL4],
            [NONE, NONE],
        );
        let mut p = syn4();
        p.frag = IP_MF;
        let f = p.frame();
        expect(
            &dp,
            "IPv4 first fragment (MF, offset 0), TCP to VIP",
            &f,
            XDP_PASS,
            &[Ipv4, OtherL4],
            [NONE, NONE],
        );
        let mut p = V4::new(CLIENT4, VIP4, IPPROTO_UDP, vec![0x5a; 64]);
        p.frag = 185; // offset 1480, last fragment
        let f = p.frame();
        expect(
            &dp,
            "IPv4 non-first fragment to the VIP",
            &f,
            XDP_PASS,
            &[Ipv4, OtherL4],
            [NONE, NONE],
        );
        let mut p = V4::new(CLIENT4, VIP4, IPPROTO_UDP, vec![0x5a; 64]);
        p.frag = IP_MF | 185;
        let f = p.frame();
        expect(
            &dp,
            "IPv4 middle fragment to the VIP",
            &f,
            XDP_PASS,
            &[Ipv4, OtherL4],
            [NONE, NONE],
        );

        // --- L4 headers ---
        let mut f = syn4().frame();
        f.truncate(14 + 20 + 19);
        expect(
            &dp,
            "TCP header cut at 19 bytes",
            &f,
            XDP_PASS,
            &[Ipv4, Malformed],
            [NONE, NONE],
        );
        let mut f = syn4().frame();
        f.truncate(14 + 20);
        expect(
            &dp,
            "IPv4 TCP with no TCP header at all",
            &f,
            XDP_PASS,
            &[Ipv4, Malformed],
            [NONE, NONE],
        );
        let mut f = udp4().frame();
        f.truncate(14 + 20 + 7);
        expect(
            &dp,
            "UDP header cut at 7 bytes",
            &f,
            XDP_PASS,
            &[Ipv4, Malformed],
            [NONE, NONE],
        );
        let mut f = syn6().frame();
        f.truncate(14 + 40 + 10);
        expect(
            &dp,
            "IPv6 TCP header cut at 10 bytes",
            &f,
            XDP_PASS,
            &[Ipv6, Malformed],
            [NONE, NONE],
        );
        let mut icmp = vec![8, 0, 0, 0, 0, 1, 0, 1];
        let c = checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let f = V4::new(CLIENT4, VIP4, IPPROTO_ICMP, icmp).frame();
        expect(&dp, "ICMP echo to the VIP", &f, XDP_PASS, &[Ipv4, Icmp], [NONE, NONE]);
        let f = V4::new(CLIENT4, VIP4, 47, vec![0; 24]).frame();
        expect(
            &dp,
            "GRE (proto 47) to the VIP",
            &f,
            XDP_PASS,
            &[Ipv4, OtherL4],
            [NONE, NONE],
        );

        // --- TCP/UDP not to a frontend ---
        let f = V4::new(CLIENT4, SNAT4, IPPROTO_TCP, tcp(CLIENT_PORT, 22, TCP_SYN, &[])).frame();
        expect(
            &dp,
            "TCP SYN to the LB's own address, port 22",
            &f,
            XDP_PASS,
            &[Ipv4, Tcp],
            [NONE, NONE],
        );
        let f = V4::new(CLIENT4, VIP4, IPPROTO_TCP, tcp(CLIENT_PORT, 443, TCP_SYN, &[])).frame();
        expect(
            &dp,
            "TCP SYN to the VIP, another port",
            &f,
            XDP_PASS,
            &[Ipv4, Tcp],
            [NONE, NONE],
        );

        // --- IPv6 ---
        let mut f = syn6().frame();
        f.truncate(14 + 39);
        expect(
            &dp,
            "IPv6 header cut at 39 bytes",
            &f,
            XDP_PASS,
            &[Ipv6, Malformed],
            [NONE, NONE],
        );
        let mut p = syn6();
        p.ext = vec![opts_ext(IPPROTO_HOPOPTS)];
        let f = p.frame();
        expect(
            &dp,
            "IPv6 hop-by-hop header, TCP SYN to the VIP",
            &f,
            XDP_PASS,
            &[Ipv6, Tcp],
            [NONE, NONE],
        );
        let mut p = udp6();
        p.ext = vec![opts_ext(IPPROTO_DSTOPTS)];
        let f = p.frame();
        expect(
            &dp,
            "IPv6 destination options, UDP to the VIP",
            &f,
            XDP_PASS,
            &[Ipv6, Udp],
            [NONE, NONE],
        );
        let mut p = udp6();
        p.ext = vec![frag_ext(0, true)];
        let f = p.frame();
        expect(
            &dp,
            "IPv6 first fragment, UDP to the VIP",
            &f,
            XDP_PASS,
            &[Ipv6, Udp],
            [NONE, NONE],
        );
        let mut p = V6::new(CLIENT6, VIP6, IPPROTO_UDP, vec![0x5a; 64]);
        p.ext = vec![frag_ext(185, false)];
        let f = p.frame();
        expect(
            &dp,
            "IPv6 non-first fragment to the VIP",
            &f,
            XDP_PASS,
            &[Ipv6, Udp],
            [NONE, NONE],
        );
        let mut p = syn6();
        p.ext = vec![opts_ext(IPPROTO_HOPOPTS); 5];
        let f = p.frame();
        expect(
            &dp,
            "IPv6 with 5 extension headers (limit 4)",
            &f,
            XDP_PASS,
            &[Ipv6, OtherL4],
            [NONE, NONE],
        );
        let mut p = syn6();
        p.ext = vec![opts_ext(IPPROTO_ROUTING)];
        let mut f = p.frame();
        f.truncate(14 + 40 + 1);
        expect(
            &dp,
            "IPv6 extension header cut at 1 byte",
            &f,
            XDP_PASS,
            &[Ipv6, Malformed],
            [NONE, NONE],
        );
        // The walk skips an extension header by its length without checking
        // that it fits, and reports the protocol named after it: passed, but
        // counted as TCP rather than malformed.
        let mut p = syn6();
        p.ext = vec![(IPPROTO_HOPOPTS, {
            let mut b = vec![0u8; 8];
            b[1] = 255; // claims 2 KiB
            b
        })];
        let f = p.frame();
        expect(
            &dp,
            "IPv6 extension header longer than the frame",
            &f,
            XDP_PASS,
            &[Ipv6, Tcp],
            [NONE, NONE],
        );
        let f = V6::new(CLIENT6, VIP6, 58, vec![128, 0, 0, 0, 0, 1, 0, 1]).frame();
        expect(
            &dp,
            "ICMPv6 echo to the VIP",
            &f,
            XDP_PASS,
            &[Ipv6, Icmpv6],
            [NONE, NONE],
        );
        let f = V6::new(CLIENT6, VIP6, 59, Vec::new()).frame();
        expect(
            &dp,
            "IPv6 no next header (59)",
            &f,
            XDP_PASS,
            &[Ipv6, OtherL4],
            [NONE, NONE],
        );

        // --- Odd but parseable: balanced. In this namespace there is no route
        // to the servers, so every balanced packet ends XDP_PASS (counted in
        // the frontend's `passed`) after its rewrite. ---

        // IP options: the L4 offset follows IHL; the rewrite touches only the
        // fixed part of the header, and the options survive.
        let mut p = syn4();
        p.options = vec![0x94, 0x04, 0x00, 0x00]; // Router Alert
        let f = p.frame();
        let out = expect(
            &dp,
            "IPv4 with options (IHL 6), TCP SYN to the VIP",
            &f,
            XDP_PASS,
            &[Ipv4, Tcp],
            [balanced(f.len(), true, true, false), NONE],
        );
        let seen = dissect_and_verify(&out);
        assert_eq!(seen.src, IpAddr::V4(SNAT4));
        assert!(v4_servers().iter().any(|s| s.addr == seen.dst), "{seen:?}");
        assert!(NAT_PORTS.contains(&seen.sport), "{seen:?}: a NAT port");
        assert_eq!(seen.dport, SERVER_PORT);
        assert_eq!(out[34..38], [0x94, 0x04, 0x00, 0x00], "the options must be left alone");
        assert_eq!(out[38 + 13], TCP_SYN, "the TCP header must be where IHL says");

        let mut p = V4::new(CLIENT4, VIP4, IPPROTO_UDP, udp(CLIENT_PORT + 1, VIP_PORT, b"opts"));
        p.options = vec![1, 1, 1, 0]; // NOP NOP NOP EOL
        p.options.extend_from_slice(&[0x07, 0x07, 0x04, 0, 0, 0, 0, 0]); // Record Route, one slot
        let f = p.frame();
        let out = expect(
            &dp,
            "IPv4 with options (IHL 8), UDP to the VIP",
            &f,
            XDP_PASS,
            &[Ipv4, Udp],
            [balanced(f.len(), true, true, false), NONE],
        );
        let seen = dissect_and_verify(&out);
        assert_eq!((seen.src, seen.dport), (IpAddr::V4(SNAT4), SERVER_PORT));
        assert!(NAT_PORTS.contains(&seen.sport), "{seen:?}: a NAT port");

        // TCP with no flags at all (a "null scan"): in full NAT only a SYN
        // opens a flow, so it gets no NAT port and no state.
        let f = V4::new(CLIENT4, VIP4, IPPROTO_TCP, tcp(CLIENT_PORT + 2, VIP_PORT, 0, &[])).frame();
        expect(
            &dp,
            "TCP with no flags to the VIP",
            &f,
            XDP_DROP,
            &[Ipv4, Tcp],
            [no_flow(f.len()), NONE],
        );
        let mut key = client_key(CLIENT4.into(), VIP4.into(), IPPROTO_TCP);
        key.sport = (CLIENT_PORT + 2).to_be();
        assert!(flow_of(&dp, &key).is_none(), "a flagless TCP segment pins no flow");

        // A bare ACK of an unknown flow (mid-stream after the flow was
        // forgotten, or spoofed): no NAT port either.
        let f = V4::new(
            CLIENT4,
            VIP4,
            IPPROTO_TCP,
            tcp(CLIENT_PORT + 3, VIP_PORT, TCP_ACK, b"data"),
        )
        .frame();
        expect(
            &dp,
            "bare ACK with data, no flow yet",
            &f,
            XDP_DROP,
            &[Ipv4, Tcp],
            [no_flow(f.len()), NONE],
        );

        // TCP data offset below 5: not checked; the ports and flags are read
        // from the fixed 20 bytes, so it is balanced like a normal segment.
        let mut f = V4::new(CLIENT4, VIP4, IPPROTO_TCP, tcp(CLIENT_PORT + 4, VIP_PORT, TCP_SYN, &[])).frame();
        f[14 + 20 + 12] = 2 << 4;
        expect(
            &dp,
            "TCP data offset 2 (< 5), SYN to the VIP",
            &f,
            XDP_PASS,
            &[Ipv4, Tcp],
            [balanced(f.len(), true, true, false), NONE],
        );

        // Total length larger than the frame: not checked either.
        let mut f = udp4().frame();
        f[16..18].copy_from_slice(&1400u16.to_be_bytes());
        expect(
            &dp,
            "IPv4 total length beyond the frame, UDP to the VIP",
            &f,
            XDP_PASS,
            &[Ipv4, Udp],
            [balanced(f.len(), true, true, false), NONE],
        );

        // Ethernet padding after a short IPv4 packet (a SYN is 54 bytes, the
        // wire minimum 60): the checksums cover the IP packet only.
        let mut f = V4::new(CLIENT4, VIP4, IPPROTO_TCP, tcp(CLIENT_PORT + 5, VIP_PORT, TCP_SYN, &[])).frame();
        f.resize(60, 0);
        let out = expect(
            &dp,
            "TCP SYN padded to 60 bytes",
            &f,
            XDP_PASS,
            &[Ipv4, Tcp],
            [balanced(f.len(), true, true, false), NONE],
        );
        dissect_and_verify(&out);
        assert_eq!(out[54..], [0; 6], "the padding must stay");
    });
}

/// Client to server and back, IPv4 and IPv6, TCP and UDP: addresses, ports
/// and checksums of the rewritten frames, checked from scratch.
#[test]
fn nat_rewrites_both_ways_with_valid_checksums() {
    if skip_without_root("nat_rewrites_both_ways_with_valid_checksums") {
        return;
    }
    in_fresh_netns(|| {
        let dp = balancer();
        let udp4_no_csum = {
            let mut p = udp4();
            p.seg = udp(CLIENT_PORT + 7, VIP_PORT, b"no checksum");
            let mut f = p.frame();
            f[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0, 0]);
            f
        };
        let cases = [
            ("IPv4 TCP SYN", syn4().frame()),
            ("IPv4 UDP", udp4().frame()),
            ("IPv4 UDP without checksum", udp4_no_csum),
            ("IPv6 TCP SYN", syn6().frame()),
            ("IPv6 UDP", udp6().frame()),
        ];
        for (name, frame) in cases {
            let v6 = frame[12..14] == ETH_IPV6.to_be_bytes();
            let fe = usize::from(v6);
            let (client, vip, snat, l3): (IpAddr, IpAddr, IpAddr, Proto) = if v6 {
                (CLIENT6.into(), VIP6.into(), SNAT6.into(), Proto::Ipv6)
            } else {
                (CLIENT4.into(), VIP4.into(), SNAT4.into(), Proto::Ipv4)
            };
            let proto = if v6 { frame[14 + 6] } else { frame[14 + 9] };
            let l4 = if proto == IPPROTO_TCP { Proto::Tcp } else { Proto::Udp };
            let mut fes = [NONE, NONE];
            fes[fe] = balanced(frame.len(), true, true, false);
            let in_seen = dissect_and_verify(&frame);
            let out = expect(&dp, &format!("{name}: client -> VIP"), &frame, XDP_PASS, &[l3, l4], fes);
            let seen = dissect_and_verify(&out);
            let mut key = client_key(client, vip, proto);
            key.sport = in_seen.sport.to_be();
            let flow = flow_of(&dp, &key).unwrap_or_else(|| panic!("{name}: no FLOWS entry"));
            let server = server_addr(flow.server);
            assert_eq!(
                seen,
                Seen {
                    src: snat,
                    dst: server,
                    proto,
                    sport: u16::from_be(flow.nat_port),
                    dport: SERVER_PORT
                },
                "{name}: the rewritten packet"
            );
            assert!(
                NAT_PORTS.contains(&u16::from_be(flow.nat_port)),
                "{name}: the NAT port {} is outside the NAT range",
                u16::from_be(flow.nat_port)
            );
            assert_eq!(out[..14], frame[..14], "{name}: no route, so the MACs stay");
            if name.contains("without checksum") {
                assert_eq!(
                    out[14 + 20 + 6..14 + 20 + 8],
                    [0, 0],
                    "{name}: 'no checksum' must stay 0"
                );
            }
            // Everything but addresses, ports and checksums is untouched.
            let ip_hdr = if l3 == Proto::Ipv4 { 20 } else { 40 };
            let l4_csum = if proto == IPPROTO_TCP { 16 } else { 6 };
            assert_eq!(
                out[14 + ip_hdr + l4_csum + 2..],
                frame[14 + ip_hdr + l4_csum + 2..],
                "{name}: L4 body"
            );
            assert_eq!(
                out[14 + ip_hdr + 4..14 + ip_hdr + l4_csum],
                frame[14 + ip_hdr + 4..14 + ip_hdr + l4_csum]
            );
            if l3 == Proto::Ipv4 {
                assert_eq!(
                    out[14..24],
                    frame[14..24],
                    "{name}: IPv4 header before the checksum (TTL kept)"
                );
            } else {
                assert_eq!(out[14..22], frame[14..22], "{name}: IPv6 header before the addresses");
            }

            // The same packet again: the pinned flow, no new one.
            let mut fes = [NONE, NONE];
            fes[fe] = balanced(frame.len(), false, true, false);
            let again = expect(
                &dp,
                &format!("{name}: client -> VIP again"),
                &frame,
                XDP_PASS,
                &[l3, l4],
                fes,
            );
            assert_eq!(again, out, "{name}: the same flow must be rewritten the same way");

            // The server's reply, to the LB's snat address and the NAT port.
            let (sport, dport) = (SERVER_PORT, u16::from_be(flow.nat_port));
            let reply = match (server, snat) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    let seg = if proto == IPPROTO_TCP {
                        tcp(sport, dport, TCP_SYN | TCP_ACK, &[])
                    } else {
                        udp(sport, dport, b"pong over udp")
                    };
                    V4::new(s, d, proto, seg).frame()
                }
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    let seg = if proto == IPPROTO_TCP {
                        tcp(sport, dport, TCP_SYN | TCP_ACK, &[])
                    } else {
                        udp(sport, dport, b"pong over udp")
                    };
                    V6::new(s, d, proto, seg).frame()
                }
                _ => unreachable!("servers and snat share a family"),
            };
            // A reply is counted at the frontend only when it ends: no
            // packets/bytes (those are client-side), `passed` when no route.
            let mut fes = [NONE, NONE];
            fes[fe] = FrontendStats { passed: 1, ..NONE };
            let back = expect(
                &dp,
                &format!("{name}: server -> LB (reply)"),
                &reply,
                XDP_PASS,
                &[l3, l4],
                fes,
            );
            let seen = dissect_and_verify(&back);
            assert_eq!(
                seen,
                Seen {
                    src: vip,
                    dst: client,
                    proto,
                    sport: VIP_PORT,
                    dport: in_seen.sport
                },
                "{name}: the rewritten reply"
            );
        }
        let stats = dp.server_stats(4).expect("SERVER_STATS");
        let flows: u64 = stats.iter().map(|s| s.new_flows).sum();
        let out: u64 = stats.iter().map(|s| s.packets_out).sum();
        assert_eq!((flows, out), (5, 5), "{stats:?}");
    });
}

/// With a route to the servers the verdict follows bpf_fib_lookup: no
/// neighbour entry -> XDP_DROP (drop_no_neigh); a neighbour on another
/// interface that is not in TX_PORTS -> XDP_PASS (passed), MACs already
/// rewritten; in TX_PORTS -> XDP_REDIRECT.
#[test]
fn forwarding_verdicts_follow_the_fib() {
    if skip_without_root("forwarding_verdicts_follow_the_fib") {
        return;
    }
    in_fresh_netns(|| {
        let mut dp = balancer();
        // The test run's packet comes in on lo: the FIB wants forwarding on there.
        sysctl("net/ipv4/conf/lo/forwarding", "1");
        sysctl("net/ipv6/conf/lo/forwarding", "1");
        ip("link add v0 type veth peer name v1");
        // /sys shows the host's namespace, so set v0's MAC rather than read it.
        ip("link set v0 address 02:00:00:00:00:0a");
        ip("link set v0 up");
        ip("link set v1 up");
        ip("addr add 198.18.0.1/15 dev v0");
        ip("-6 addr add fd00:198:18::1/48 dev v0 nodad");
        let v0 = nix::net::if_::if_nametoindex("v0").expect("v0's ifindex");
        for (name, frame, fe, l3, l4) in [
            ("IPv4 TCP SYN", syn4().frame(), 0, Proto::Ipv4, Proto::Tcp),
            ("IPv6 UDP", udp6().frame(), 1, Proto::Ipv6, Proto::Udp),
        ] {
            // Route, no neighbour.
            let mut fes = [NONE, NONE];
            fes[fe] = balanced(frame.len(), true, false, true);
            let out = expect(
                &dp,
                &format!("{name}: route, no neighbour"),
                &frame,
                XDP_DROP,
                &[l3, l4],
                fes,
            );
            let seen = dissect_and_verify(&out);

            // A neighbour, on v0, which is not in TX_PORTS.
            let family = if l3 == Proto::Ipv4 { "-4" } else { "-6" };
            ip(&format!(
                "{family} neigh replace {} lladdr 02:00:00:00:01:01 dev v0 nud permanent",
                seen.dst
            ));
            let mut fes = [NONE, NONE];
            fes[fe] = balanced(frame.len(), false, true, false);
            let out = expect(
                &dp,
                &format!("{name}: neighbour, not in TX_PORTS"),
                &frame,
                XDP_PASS,
                &[l3, l4],
                fes,
            );
            assert_eq!(out[0..6], SERVER_MAC, "{name}: destination MAC from the FIB");
            assert_eq!(out[6..12], V0_MAC, "{name}: source MAC from the FIB");
            dissect_and_verify(&out);
        }

        dp.add_tx_port(v0).expect("v0 into TX_PORTS");
        for (name, frame, fe, l3, l4) in [
            ("IPv4 TCP SYN", syn4().frame(), 0, Proto::Ipv4, Proto::Tcp),
            ("IPv6 UDP", udp6().frame(), 1, Proto::Ipv6, Proto::Udp),
        ] {
            // XDP_REDIRECT is counted nowhere at the frontend but in packets.
            let mut fes = [NONE, NONE];
            fes[fe] = balanced(frame.len(), false, false, false);
            let out = expect(
                &dp,
                &format!("{name}: neighbour, in TX_PORTS"),
                &frame,
                XDP_REDIRECT,
                &[l3, l4],
                fes,
            );
            assert_eq!(out[0..6], SERVER_MAC);
            assert_eq!(out[6..12], V0_MAC);
            dissect_and_verify(&out);
        }
    });
}

/// A confirmed flow's segments are forwarded on the flow entry alone (the
/// frontend isn't looked up), so a flow outlives a reload that drops its
/// frontend, as HAProxy's old process finishes its sessions; new SYNs to
/// the dropped frontend go to the stack. A frontend on a port another VIP
/// still uses keeps balancing.
#[test]
fn established_flows_outlive_their_frontend_and_ports_stay_shared() {
    if skip_without_root("established_flows_outlive_their_frontend_and_ports_stay_shared") {
        return;
    }
    in_fresh_netns(|| {
        let mut dp = balancer();
        let seg = |cport: u16, flags: u8, data: &[u8]| {
            V4::new(CLIENT4, VIP4, IPPROTO_TCP, tcp(cport, VIP_PORT, flags, data)).frame()
        };
        let run = |dp: &Datapath, what: &str, f: &[u8]| {
            let (action, out) = dp.test_run(f).expect("test run");
            assert_ne!(action, XDP_ABORTED, "{what}");
            (action, dissect_and_verify(&out))
        };
        // The handshake: SYN, the server's SYN-ACK to the NAT port, the client's ACK.
        let (_, syn) = run(&dp, "SYN", &seg(42100, TCP_SYN, &[]));
        let IpAddr::V4(srv) = syn.dst else {
            panic!("an IPv4 server")
        };
        let synack = V4::new(
            srv,
            SNAT4,
            IPPROTO_TCP,
            tcp(SERVER_PORT, syn.sport, TCP_SYN | TCP_ACK, &[]),
        )
        .frame();
        let (_, back) = run(&dp, "SYN-ACK", &synack);
        assert_eq!(back.dst, IpAddr::from(CLIENT4), "the SYN-ACK goes back to the client");
        run(&dp, "ACK", &seg(42100, TCP_ACK, &[]));
        let mut key = client_key(CLIENT4.into(), VIP4.into(), IPPROTO_TCP);
        key.sport = 42100u16.to_be();
        let flow = flow_of(&dp, &key).expect("the flow");
        assert_eq!(flow.flags & FLOW_HALF_OPEN, 0, "confirmed by the ACK");

        let (_, data) = run(&dp, "data", &seg(42100, TCP_ACK | TCP_PSH, b"GET / HTTP/1.0\r\n\r\n"));
        assert_eq!(
            (data.dst, data.sport),
            (syn.dst, syn.sport),
            "data on the flow's server and port"
        );

        dp.remove_frontend(VIP4.into(), VIP_PORT).expect("frontend removed");
        let (_, data) = run(
            &dp,
            "data after the frontend left",
            &seg(42100, TCP_ACK | TCP_PSH, b"more"),
        );
        assert_eq!(
            (data.dst, data.sport),
            (syn.dst, syn.sport),
            "an established flow goes on after its frontend left"
        );
        let (_, new) = run(&dp, "a new SYN to the removed frontend", &seg(42101, TCP_SYN, &[]));
        assert_eq!(
            new.dst,
            IpAddr::from(VIP4),
            "a new connection to a removed frontend isn't balanced"
        );
        // The IPv6 VIP listens on the same port: its frontend still balances.
        let (_, v6) = run(&dp, "a SYN to the IPv6 VIP on the shared port", &syn6().frame());
        assert_ne!(
            v6.dst,
            IpAddr::from(VIP6),
            "the other VIP on the port is still balanced"
        );
    });
}

/// A flow keeps its next hop (MACs, interface) while the FIB generation
/// stays, and looks it up again once the agent's watch bumps it: shown by
/// changing the server's neighbour entry under a flow.
#[test]
fn next_hops_are_cached_until_the_fib_generation_changes() {
    if skip_without_root("next_hops_are_cached_until_the_fib_generation_changes") {
        return;
    }
    in_fresh_netns(|| {
        let dp = balancer();
        lan_on_v0();
        let frame = udp4().frame();
        let run = |what: &str| {
            let (action, out) = dp.test_run(&frame).expect("test run");
            assert_eq!(action_name(action), action_name(XDP_PASS), "{what}");
            dissect_and_verify(&out);
            out
        };
        // The first packet picks the server; where it went tells its address.
        let (_, first) = dp.test_run(&frame).expect("test run");
        let server = dissect_and_verify(&first).dst;
        ip(&format!(
            "-4 neigh replace {server} lladdr 02:00:00:00:01:01 dev v0 nud permanent"
        ));
        let mut generation = dp.fib_generation().expect("FIB_GEN");
        generation.bump().expect("a first generation");

        let out = run("a pinned flow: looked up, and kept");
        assert_eq!(out[0..6], SERVER_MAC, "destination MAC from the FIB");
        ip(&format!(
            "-4 neigh replace {server} lladdr 02:00:00:00:01:02 dev v0 nud permanent"
        ));
        let out = run("the same generation: the cached next hop");
        assert_eq!(
            out[0..6],
            SERVER_MAC,
            "within a generation the flow must use its cached MAC (else nothing is cached)"
        );
        assert_eq!(out[6..12], V0_MAC, "source MAC from the cache");

        generation.bump().expect("a new generation");
        let out = run("a new generation: looked up again");
        assert_eq!(
            out[0..6],
            [0x02, 0, 0, 0, 0x01, 0x02],
            "the neighbour's new MAC after the bump"
        );
        let out = run("and cached again");
        assert_eq!(out[0..6], [0x02, 0, 0, 0, 0x01, 0x02]);

        // A packet longer than any the cache passed goes through the FIB's
        // MTU check: over v0's MTU it is dropped, not sent from the cache.
        ip("link set v0 mtu 1280");
        let big = V4::new(CLIENT4, VIP4, IPPROTO_UDP, udp(CLIENT_PORT, VIP_PORT, &[0u8; 1400]));
        let (action, _) = dp.test_run(&big.frame()).expect("test run");
        assert_eq!(
            action_name(action),
            action_name(XDP_DROP),
            "a packet over the MTU must meet the FIB's check even with a cached next hop"
        );
    });
}

#[test]
fn tcp_fin_and_rst_mark_flows_closing() {
    if skip_without_root("tcp_fin_and_rst_mark_flows_closing") {
        return;
    }
    in_fresh_netns(|| {
        let dp = balancer();
        let one = |len: usize, new_flow: bool| [balanced(len, new_flow, true, false), NONE];
        let seg = |port: u16, flags: u8| V4::new(CLIENT4, VIP4, IPPROTO_TCP, tcp(port, VIP_PORT, flags, &[])).frame();
        let key = |port: u16| {
            let mut k = client_key(CLIENT4.into(), VIP4.into(), IPPROTO_TCP);
            k.sport = port.to_be();
            k
        };
        let tcp4 = [Proto::Ipv4, Proto::Tcp];

        // Client's RST on an open flow.
        let f = seg(41000, TCP_SYN);
        expect(&dp, "SYN (flow A)", &f, XDP_PASS, &tcp4, one(f.len(), true));
        assert_eq!(flow_of(&dp, &key(41000)).expect("flow A").flags & FLOW_CLOSING, 0);
        let f = seg(41000, TCP_RST | TCP_ACK);
        expect(&dp, "RST (flow A)", &f, XDP_PASS, &tcp4, one(f.len(), false));
        let a = flow_of(&dp, &key(41000)).expect("flow A");
        assert_eq!(a.flags & FLOW_CLOSING, FLOW_CLOSING, "an RST marks the flow closing");
        // A new SYN on a closing flow starts over: a new flow (Maglev picks
        // the same server while the table is the same).
        let f = seg(41000, TCP_SYN);
        expect(
            &dp,
            "SYN again on the closing flow A",
            &f,
            XDP_PASS,
            &tcp4,
            one(f.len(), true),
        );
        let a2 = flow_of(&dp, &key(41000)).expect("flow A reopened");
        assert_eq!(a2.flags & FLOW_CLOSING, 0, "the reopened flow is open");
        assert_eq!(a2.server, a.server);

        // Client's FIN.
        let f = seg(41001, TCP_SYN);
        expect(&dp, "SYN (flow B)", &f, XDP_PASS, &tcp4, one(f.len(), true));
        let f = seg(41001, TCP_FIN | TCP_ACK);
        expect(&dp, "FIN (flow B)", &f, XDP_PASS, &tcp4, one(f.len(), false));
        assert_eq!(
            flow_of(&dp, &key(41001)).expect("flow B").flags & FLOW_CLOSING,
            FLOW_CLOSING
        );
        // Data after the FIN stays on the (closing) flow.
        let f = seg(41001, TCP_ACK | TCP_PSH);
        expect(&dp, "ACK after FIN (flow B)", &f, XDP_PASS, &tcp4, one(f.len(), false));

        // Server's FIN: the reply entry and the client's flow both close.
        let f = seg(41002, TCP_SYN);
        let out = expect(&dp, "SYN (flow C)", &f, XDP_PASS, &tcp4, one(f.len(), true));
        let seen = dissect_and_verify(&out);
        let IpAddr::V4(srv) = seen.dst else {
            panic!("an IPv4 server")
        };
        let reply = V4::new(
            srv,
            SNAT4,
            IPPROTO_TCP,
            tcp(SERVER_PORT, seen.sport, TCP_FIN | TCP_ACK, &[]),
        )
        .frame();
        expect(
            &dp,
            "server's FIN (flow C)",
            &reply,
            XDP_PASS,
            &tcp4,
            [FrontendStats { passed: 1, ..NONE }, NONE],
        );
        assert_eq!(
            flow_of(&dp, &key(41002)).expect("flow C").flags & FLOW_CLOSING,
            FLOW_CLOSING
        );
        let replies = dp.replies().expect("REPLIES");
        let r = replies
            .iter()
            .find(|(k, _)| k.dport == seen.sport.to_be() && k.src[..4] == srv.octets())
            .expect("flow C's reply entry");
        assert_eq!(r.1.flags & FLOW_CLOSING, FLOW_CLOSING);

        // An RST with no flow: full NAT gives it no port and no state.
        let f = seg(41003, TCP_RST);
        expect(
            &dp,
            "RST with no flow (flow D)",
            &f,
            XDP_DROP,
            &tcp4,
            [no_flow(f.len()), NONE],
        );
        assert!(flow_of(&dp, &key(41003)).is_none(), "an RST opens no flow");
    });
}

/// A backend that mixes IPv4 and IPv6 servers behind an IPv4 and an IPv6 VIP
/// (haproxy.cfg allows it, and the plan keeps it). The Maglev table doesn't
/// know families, so a new flow can land on a server of the other family:
/// that flow is dropped and counted as `drop_no_server`; it must never be
/// rewritten into a garbled packet (IPv6 address bytes in an IPv4 header).
#[test]
fn mixed_family_backend_never_garbles_a_packet() {
    if skip_without_root("mixed_family_backend_never_garbles_a_packet") {
        return;
    }
    in_fresh_netns(|| {
        let sizes = Sizes {
            backends: 1,
            servers: 2,
            table_size: TABLE,
            flows: 1024,
            ..Sizes::default()
        };
        let mut dp = Datapath::load(sizes, false, XDP_PROGRAM).expect("loading the XDP program");
        dp.set_settings(&Settings::with_default_timeouts(TABLE))
            .expect("settings");
        let servers = vec![
            server(0, "s4", Ipv4Addr::new(198, 18, 0, 101).into()),
            server(1, "s6", "fd00:198:18::101".parse::<Ipv6Addr>().expect("v6").into()),
        ];
        dp.set_server(&servers[0], SNAT4.into(), true).expect("server");
        dp.set_server(&servers[1], SNAT6.into(), true).expect("server");
        dp.set_maglev(0, &servers, &[1, 1]).expect("table");
        dp.add_frontend(VIP4.into(), VIP_PORT, 0, 0, NatMode::Full, false)
            .expect("frontend v4");
        dp.add_frontend(VIP6.into(), VIP_PORT, 1, 0, NatMode::Full, false)
            .expect("frontend v6");

        for v6 in [false, true] {
            let (mut rewritten, mut dropped) = (0, 0);
            for port in 20000..20064u16 {
                let f = if v6 {
                    V6::new(CLIENT6, VIP6, IPPROTO_TCP, tcp(port, VIP_PORT, TCP_SYN, &[])).frame()
                } else {
                    V4::new(CLIENT4, VIP4, IPPROTO_TCP, tcp(port, VIP_PORT, TCP_SYN, &[])).frame()
                };
                let before = snapshot(&dp);
                let (action, out) = dp.test_run(&f).expect("test run");
                let after = snapshot(&dp);
                let d = fe_delta(&before.fe[usize::from(v6)], &after.fe[usize::from(v6)]);
                match action {
                    XDP_PASS => {
                        let seen = dissect_and_verify(&out);
                        let (snat, srv) = if v6 {
                            (IpAddr::V6(SNAT6), servers[1].addr)
                        } else {
                            (IpAddr::V4(SNAT4), servers[0].addr)
                        };
                        assert_eq!(
                            (seen.src, seen.dst),
                            (snat, srv),
                            "port {port}: the server of the family"
                        );
                        assert_eq!(d, balanced(f.len(), true, true, false), "port {port}");
                        rewritten += 1;
                    }
                    XDP_DROP => {
                        assert_eq!(out, f, "port {port}: a dropped packet is not rewritten");
                        assert_eq!(
                            d,
                            FrontendStats {
                                packets: 1,
                                bytes: f.len() as u64,
                                drop_no_server: 1,
                                ..NONE
                            },
                            "port {port}"
                        );
                        dropped += 1;
                    }
                    other => panic!("port {port}: {}", action_name(other)),
                }
            }
            println!(
                "mixed backend, IPv{}: {rewritten} rewritten, {dropped} dropped",
                if v6 { 6 } else { 4 }
            );
            assert!(rewritten > 0 && dropped > 0, "both servers should have been picked");
        }
    });
}

/// A small deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Thousands of random and mutated frames: the program never aborts, never
/// changes a frame's length, and counts every frame exactly once at L3.
#[test]
fn random_and_mutated_frames_never_abort() {
    if skip_without_root("random_and_mutated_frames_never_abort") {
        return;
    }
    in_fresh_netns(|| {
        const RUNS: usize = 6000;
        let dp = balancer();
        let mut rng = Rng(0x6c62_7864_7066_757a);
        let seeds: Vec<Vec<u8>> = {
            let mut opt = syn4();
            opt.options = vec![1, 1, 1, 1];
            let mut ext = syn6();
            ext.ext = vec![opts_ext(IPPROTO_HOPOPTS), frag_ext(0, true)];
            vec![
                syn4().frame(),
                udp4().frame(),
                syn6().frame(),
                udp6().frame(),
                opt.frame(),
                ext.frame(),
                V4::new(
                    Ipv4Addr::new(198, 18, 0, 101),
                    SNAT4,
                    IPPROTO_TCP,
                    tcp(SERVER_PORT, CLIENT_PORT, TCP_ACK, b"reply"),
                )
                .frame(),
            ]
        };
        // Establish flows, so that mutated replies can hit REPLIES entries.
        for s in &seeds {
            dp.test_run(s).expect("seed frame");
        }
        let before = snapshot(&dp);
        let mut verdicts = [0usize; 5];
        let started = std::time::Instant::now();
        for i in 0..RUNS {
            let mut f = if rng.below(10) == 0 {
                // Pure noise, with a plausible EtherType half of the time.
                let len = 14 + rng.below(200);
                let mut f: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if rng.below(2) == 0 {
                    let t = [ETH_IP, ETH_IPV6][rng.below(2)];
                    f[12..14].copy_from_slice(&t.to_be_bytes());
                }
                f
            } else {
                seeds[rng.below(seeds.len())].clone()
            };
            // Mutations: flip bytes (mostly in the headers), set header fields
            // that steer the parser, truncate, or append.
            for _ in 0..1 + rng.below(4) {
                match rng.below(6) {
                    0 | 1 => {
                        let at = rng.below(f.len().min(80));
                        f[at] ^= 1 << rng.below(8);
                    }
                    2 => {
                        let at = rng.below(f.len());
                        f[at] = rng.next() as u8;
                    }
                    3 if f.len() > 14 => {
                        // IHL / version, fragment bits, protocol, next header.
                        let at = [14, 20, 21, 23, 20, 54, 14 + 20 + 12, 14 + 20 + 13][rng.below(8)];
                        if at < f.len() {
                            f[at] = rng.next() as u8;
                        }
                    }
                    4 => f.truncate(14 + rng.below(f.len() - 13)),
                    _ => f.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
                }
            }
            let (action, out) = dp
                .test_run(&f)
                .unwrap_or_else(|e| panic!("run {i}: test run failed on {f:02x?}: {e}"));
            assert_ne!(action, XDP_ABORTED, "run {i}: XDP_ABORTED on {f:02x?}");
            assert!(
                matches!(action, XDP_DROP | XDP_PASS),
                "run {i}: {} in a namespace without routes, on {f:02x?}",
                action_name(action)
            );
            assert_eq!(out.len(), f.len(), "run {i}: length changed");
            verdicts[action as usize] += 1;
        }
        let took = started.elapsed();
        let after = snapshot(&dp);
        let l3: u64 = [Proto::Ipv4, Proto::Ipv6, Proto::Arp, Proto::OtherL3]
            .iter()
            .map(|p| after.proto[*p as usize] - before.proto[*p as usize])
            .sum();
        assert_eq!(l3, RUNS as u64, "every frame is counted once at L3");
        let fe_packets: u64 = (0..2).map(|i| after.fe[i].packets - before.fe[i].packets).sum();
        println!(
            "{RUNS} mutated frames in {took:.2?}: {} passed, {} dropped; {fe_packets} reached a frontend; \
             malformed {}",
            verdicts[XDP_PASS as usize],
            verdicts[XDP_DROP as usize],
            after.proto[Proto::Malformed as usize] - before.proto[Proto::Malformed as usize],
        );
    });
}

/// Full NAT's TCP state is made by SYNs only and stays bounded: a segment
/// without a flow gets no port; a SYN's flow is half-open until the server's
/// SYN-ACK and the client's ACK both went by, and a half-open flow lets go of
/// its port after the SYN timeout (a spoofed SYN flood holds ports for
/// seconds, not an hour); a client's RST closes the reply entry as a server's
/// does; UDP replies keep the client's entry fresh.
#[test]
fn full_nat_state_is_syn_driven_and_bounded() {
    if skip_without_root("full_nat_state_is_syn_driven_and_bounded") {
        return;
    }
    in_fresh_netns(|| {
        let mut dp = balancer();
        // One NAT port, so flows compete for it; a short SYN timeout to wait out.
        let mut settings = Settings::with_default_timeouts(TABLE);
        settings.nat_port_count = 1;
        settings.syn_timeout_ns = 200_000_000;
        dp.set_settings(&settings).expect("settings");
        // Backend 0 with one server, so every flow competes for the same
        // (server, port).
        let only = &v4_servers()[..1];
        dp.set_maglev(0, only, &[1]).expect("one-server table");
        let port = DEFAULT_NAT_PORT_FIRST;
        let tcp4 = [Proto::Ipv4, Proto::Tcp];
        let seg = |cport: u16, flags: u8| V4::new(CLIENT4, VIP4, IPPROTO_TCP, tcp(cport, VIP_PORT, flags, &[])).frame();
        let key = |cport: u16| {
            let mut k = client_key(CLIENT4.into(), VIP4.into(), IPPROTO_TCP);
            k.sport = cport.to_be();
            k
        };
        let reply_of = |dp: &Datapath| {
            dp.replies()
                .expect("REPLIES")
                .into_iter()
                .find(|(k, _)| k.dport == port.to_be())
                .map(|(_, r)| r)
        };
        let ok = |len: usize, new_flow: bool| [balanced(len, new_flow, true, false), NONE];

        // A: SYN, then an ACK before any SYN-ACK (forwarded, not confirmed).
        let f = seg(42000, TCP_SYN);
        let out = expect(&dp, "SYN (A)", &f, XDP_PASS, &tcp4, ok(f.len(), true));
        let seen = dissect_and_verify(&out);
        assert_eq!(seen.sport, port, "the one NAT port");
        let IpAddr::V4(srv) = seen.dst else {
            panic!("an IPv4 server")
        };
        let a = flow_of(&dp, &key(42000)).expect("A's flow");
        assert_eq!(a.flags & FLOW_HALF_OPEN, FLOW_HALF_OPEN, "a SYN's flow is half-open");
        let r = reply_of(&dp).expect("A's reply entry");
        assert_eq!(r.flags & FLOW_HALF_OPEN, FLOW_HALF_OPEN);
        let f = seg(42000, TCP_SYN);
        expect(&dp, "SYN retransmit (A)", &f, XDP_PASS, &tcp4, ok(f.len(), false));
        let f = seg(42000, TCP_ACK);
        expect(&dp, "ACK before SYN-ACK (A)", &f, XDP_PASS, &tcp4, ok(f.len(), false));
        assert_eq!(
            flow_of(&dp, &key(42000)).expect("A").flags & FLOW_HALF_OPEN,
            FLOW_HALF_OPEN,
            "no SYN-ACK yet: still half-open"
        );

        // B competes for the port while A is half-open and young: no port.
        let f = seg(42001, TCP_SYN);
        expect(
            &dp,
            "SYN (B) while A holds the port",
            &f,
            XDP_DROP,
            &tcp4,
            [no_port(f.len()), NONE],
        );

        // A's handshake never completes: after the SYN timeout its stray
        // segments get nothing, and B takes the port.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let f = seg(42000, TCP_ACK);
        expect(
            &dp,
            "ACK after A expired",
            &f,
            XDP_DROP,
            &tcp4,
            [no_flow(f.len()), NONE],
        );
        let f = seg(42001, TCP_SYN);
        let out = expect(&dp, "SYN (B) after A expired", &f, XDP_PASS, &tcp4, ok(f.len(), true));
        assert_eq!(dissect_and_verify(&out).sport, port, "B has A's port now");
        let IpAddr::V4(srv_b) = dissect_and_verify(&out).dst else {
            panic!("an IPv4 server")
        };

        // B completes: the server's SYN-ACK, then the client's ACK.
        let synack = V4::new(
            srv_b,
            SNAT4,
            IPPROTO_TCP,
            tcp(SERVER_PORT, port, TCP_SYN | TCP_ACK, &[]),
        )
        .frame();
        let out = expect(
            &dp,
            "server's SYN-ACK (B)",
            &synack,
            XDP_PASS,
            &tcp4,
            [FrontendStats { passed: 1, ..NONE }, NONE],
        );
        let back = dissect_and_verify(&out);
        assert_eq!((back.src, back.sport, back.dport), (IpAddr::V4(VIP4), VIP_PORT, 42001));
        assert_eq!(reply_of(&dp).expect("B").flags & FLOW_SYN_ACKED, FLOW_SYN_ACKED);
        let f = seg(42001, TCP_ACK);
        expect(&dp, "client's ACK (B)", &f, XDP_PASS, &tcp4, ok(f.len(), false));
        assert_eq!(flow_of(&dp, &key(42001)).expect("B").flags & FLOW_HALF_OPEN, 0);
        assert_eq!(reply_of(&dp).expect("B").flags & (FLOW_HALF_OPEN | FLOW_SYN_ACKED), 0);

        // An established B keeps its port past the SYN timeout.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let f = seg(42002, TCP_SYN);
        expect(
            &dp,
            "SYN (C) while established B holds the port",
            &f,
            XDP_DROP,
            &tcp4,
            [no_port(f.len()), NONE],
        );

        // The client's RST closes B's reply entry, as a server's RST would.
        let f = seg(42001, TCP_RST | TCP_ACK);
        expect(&dp, "client's RST (B)", &f, XDP_PASS, &tcp4, ok(f.len(), false));
        assert_eq!(reply_of(&dp).expect("B").flags & FLOW_CLOSING, FLOW_CLOSING);
        let _ = srv;

        // UDP: a server's reply keeps the client's entry fresh.
        let f = udp4().frame();
        let out = expect(
            &dp,
            "UDP to the VIP",
            &f,
            XDP_PASS,
            &[Proto::Ipv4, Proto::Udp],
            [balanced(f.len(), true, true, false), NONE],
        );
        let useen = dissect_and_verify(&out);
        let IpAddr::V4(usrv) = useen.dst else {
            panic!("an IPv4 server")
        };
        let ukey = client_key(CLIENT4.into(), VIP4.into(), IPPROTO_UDP);
        let before = flow_of(&dp, &ukey).expect("the UDP flow").seen_ns;
        std::thread::sleep(std::time::Duration::from_millis(20));
        let pong = V4::new(usrv, SNAT4, IPPROTO_UDP, udp(SERVER_PORT, useen.sport, b"pong")).frame();
        expect(
            &dp,
            "UDP reply",
            &pong,
            XDP_PASS,
            &[Proto::Ipv4, Proto::Udp],
            [FrontendStats { passed: 1, ..NONE }, NONE],
        );
        let after = flow_of(&dp, &ukey).expect("the UDP flow").seen_ns;
        assert!(
            after > before,
            "the reply refreshed the client's entry ({before} -> {after})"
        );
    });
}

/// ICMP errors about a balanced flow are rewritten both ways, as the flow's
/// NAT: one about a packet to a server (fragmentation-needed from a router
/// on the servers' side) reaches the client as about its packet to the VIP,
/// from the VIP; one about a packet to the client (time-exceeded on the
/// client's side) reaches the server as about its own packet. Every
/// checksum is recomputed here from scratch. Errors about no flow of ours
/// go to the stack untouched.
#[test]
fn icmp_errors_about_balanced_flows_are_translated_both_ways() {
    if skip_without_root("icmp_errors_about_balanced_flows_are_translated_both_ways") {
        return;
    }
    in_fresh_netns(|| {
        let dp = balancer();
        let router4 = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 254));
        let router6 = IpAddr::V6("fd00:198:18::254".parse().expect("v6"));
        let mtu = 1400u32.to_be_bytes();
        // Translated, then handed to the stack (no route in this namespace);
        // an ICMP error counts as translated, not among the frontend's packets.
        let icmp_ok = FrontendStats {
            icmp_errors: 1,
            passed: 1,
            ..NONE
        };
        for (name, client, vip, snat, router, l3, l4, too_big) in [
            (
                "IPv4",
                IpAddr::V4(CLIENT4),
                IpAddr::V4(VIP4),
                IpAddr::V4(SNAT4),
                router4,
                Proto::Ipv4,
                Proto::Icmp,
                (3u8, 4u8),
            ),
            (
                "IPv6",
                IpAddr::V6(CLIENT6),
                IpAddr::V6(VIP6),
                IpAddr::V6(SNAT6),
                router6,
                Proto::Ipv6,
                Proto::Icmpv6,
                (2, 0),
            ),
        ] {
            let fe = usize::from(l3 == Proto::Ipv6);
            // The flow: a client's SYN, rewritten towards a server.
            let syn = ip_frame(client, vip, IPPROTO_TCP, tcp(42100, VIP_PORT, TCP_SYN, &[]));
            let mut fes = [NONE, NONE];
            fes[fe] = balanced(syn.len(), true, true, false);
            let out = expect(&dp, &format!("{name}: SYN"), &syn, XDP_PASS, &[l3, Proto::Tcp], fes);
            let seen = dissect_and_verify(&out);
            let (server, nat_port) = (seen.dst, seen.sport);
            let ip_len = if l3 == Proto::Ipv4 { 20 } else { 40 };
            let quote = |f: &[u8]| f[14..14 + ip_len + 8].to_vec();

            // Too big on the servers' side, about the packet we sent there.
            let sent = ip_frame(snat, server, IPPROTO_TCP, tcp(nat_port, SERVER_PORT, TCP_ACK, b"data"));
            let err = icmp_error(router, snat, too_big.0, too_big.1, mtu, &quote(&sent));
            let mut fes = [NONE, NONE];
            fes[fe] = icmp_ok;
            let out = expect(
                &dp,
                &format!("{name}: too big, servers' side"),
                &err,
                XDP_PASS,
                &[l3, l4],
                fes,
            );
            assert_eq!(
                dissect_icmp_and_verify(&out),
                IcmpSeen {
                    outer: (vip, client),
                    kind: too_big.0,
                    rest: mtu,
                    inner: (client, 42100, vip, VIP_PORT),
                },
                "{name}: the client learns about its packet to the VIP, from the VIP"
            );

            // Time exceeded on the client's side, about a packet we sent there.
            let sent = ip_frame(vip, client, IPPROTO_TCP, tcp(VIP_PORT, 42100, TCP_ACK, b"reply"));
            let kind = if l3 == Proto::Ipv4 { 11 } else { 3 };
            let err = icmp_error(router, vip, kind, 0, [0; 4], &quote(&sent));
            let out = expect(
                &dp,
                &format!("{name}: time exceeded, client's side"),
                &err,
                XDP_PASS,
                &[l3, l4],
                fes,
            );
            assert_eq!(
                dissect_icmp_and_verify(&out),
                IcmpSeen {
                    outer: (snat, server),
                    kind,
                    rest: [0; 4],
                    inner: (server, SERVER_PORT, snat, nat_port),
                },
                "{name}: the server learns about its own packet"
            );

            // About a flow we don't have: the stack's.
            let sent = ip_frame(snat, server, IPPROTO_TCP, tcp(nat_port ^ 1, SERVER_PORT, TCP_ACK, &[]));
            let err = icmp_error(router, snat, too_big.0, too_big.1, mtu, &quote(&sent));
            let out = expect(
                &dp,
                &format!("{name}: about no flow"),
                &err,
                XDP_PASS,
                &[l3, l4],
                [NONE, NONE],
            );
            assert_eq!(out, err, "{name}: left untouched");
        }
    });
}

/// The IPv4 frontend's rules for `connection_rules_decide_a_new_flows_first_packet`:
/// `reject if { src 198.19.0.0/16 fd00:198:18:1::/64 } { src_port CLIENT_PORT }`,
/// then `silent-drop if { src_port 7 }`, and the same on the IPv6 frontend.
fn reject_rules() -> lbxdp_common::Rules {
    use lbxdp_common::{EXPR_SRC_NET, EXPR_SRC_PORT, RULE_REJECT, RULE_SILENT_DROP, Rule, RuleExpr, RuleSuite, Rules};
    let mut r = Rules {
        exprs: 3,
        acls: 3,
        tcp: 2,
        rules: 2,
        ..Rules::default()
    };
    r.expr[0] = RuleExpr {
        kind: EXPR_SRC_NET,
        set: 5,
        ..RuleExpr::default()
    };
    let port = |p: u16| RuleExpr {
        kind: EXPR_SRC_PORT,
        low: p.into(),
        high: p.into(),
        ..RuleExpr::default()
    };
    r.expr[1] = port(CLIENT_PORT);
    r.expr[2] = port(7);
    r.acl[..3].copy_from_slice(&[0b1, 0b10, 0b100]);
    let rule = |action, pos| {
        let mut suite = [RuleSuite::default(); lbxdp_common::MAX_RULE_SUITES];
        suite[0] = RuleSuite { pos, neg: 0 };
        Rule {
            action,
            unless: 0,
            suites: 1,
            pad: 0,
            backend: [u32::MAX; 2],
            suite,
        }
    };
    r.rule[0] = rule(RULE_REJECT, 0b11);
    r.rule[1] = rule(RULE_SILENT_DROP, 0b100);
    r
}

#[test]
fn connection_rules_decide_a_new_flows_first_packet() {
    if skip_without_root("connection_rules_decide_a_new_flows_first_packet") {
        return;
    }
    in_fresh_netns(|| {
        let mut dp = balancer();
        dp.add_nets(
            5,
            &[
                ("198.19.0.0".parse().expect("net"), 16),
                ("fd00:198:18:1::".parse().expect("net"), 64),
            ],
        )
        .expect("address set");
        // A set that must not match: another set id with the client in it.
        dp.add_nets(6, &[(CLIENT4.into(), 32)]).expect("address set");
        for fe in 0..2 {
            dp.set_rules(fe, &reject_rules()).expect("rules");
        }
        dp.add_frontend(VIP4.into(), VIP_PORT, 0, 0, NatMode::Full, true)
            .expect("frontend v4");
        dp.add_frontend(VIP6.into(), VIP_PORT, 1, 1, NatMode::Full, true)
            .expect("frontend v6");
        let denied = |len: usize| FrontendStats {
            packets: 1,
            bytes: len as u64,
            denied_conn: 1,
            ..FrontendStats::default()
        };
        // SYNs from the listed networks on the listed port: a RST back, from
        // the VIP, acknowledging the SYN (and its options and data gone).
        let with_opts = |mut seg: Vec<u8>| {
            seg[12] = 6 << 4;
            seg.splice(20..20, [2, 4, 0x05, 0xb4]);
            seg.extend_from_slice(b"data");
            seg
        };
        let syn4 = V4::new(
            CLIENT4,
            VIP4,
            IPPROTO_TCP,
            with_opts(tcp(CLIENT_PORT, VIP_PORT, TCP_SYN, &[])),
        )
        .frame();
        let syn6 = V6::new(
            CLIENT6,
            VIP6,
            IPPROTO_TCP,
            with_opts(tcp(CLIENT_PORT, VIP_PORT, TCP_SYN, &[])),
        )
        .frame();
        for (name, frame, fe, client, vip) in [
            ("IPv4", syn4, 0, IpAddr::from(CLIENT4), IpAddr::from(VIP4)),
            ("IPv6", syn6, 1, IpAddr::from(CLIENT6), IpAddr::from(VIP6)),
        ] {
            let before = snapshot(&dp);
            let (action, out) = dp.test_run(&frame).expect("test run");
            let after = snapshot(&dp);
            assert_eq!(action_name(action), "XDP_TX", "{name}: a rejected SYN is answered");
            assert_eq!(fe_delta(&before.fe[fe], &after.fe[fe]), denied(frame.len()), "{name}");
            let seen = dissect_and_verify(&out);
            assert_eq!(seen.endpoints(), ((vip, VIP_PORT), (client, CLIENT_PORT)), "{name}");
            let l4 = if fe == 0 { 14 + 20 } else { 14 + 40 };
            assert_eq!(out.len(), l4 + 20, "{name}: a bare RST");
            assert_eq!(out[l4 + 13], TCP_RST | TCP_ACK, "{name}: RST|ACK");
            assert_eq!(out[l4 + 4..l4 + 8], [0; 4], "{name}: sequence 0");
            // The SYN's sequence (0x01020304) + 1 for the SYN + 4 bytes of data.
            assert_eq!(
                out[l4 + 8..l4 + 12],
                0x0102_0309u32.to_be_bytes(),
                "{name}: acknowledges the SYN"
            );
            assert_eq!(
                (&out[0..6], &out[6..12]),
                (&frame[6..12], &frame[0..6]),
                "{name}: back to the sender"
            );
            let mut key = client_key(client, vip, IPPROTO_TCP);
            key.sport = CLIENT_PORT.to_be();
            assert!(flow_of(&dp, &key).is_none(), "{name}: a refused SYN leaves no flow");
        }
        // Silent drop; a UDP datagram that a reject rule refuses is dropped.
        let drop_syn = V4::new(CLIENT4, VIP4, IPPROTO_TCP, tcp(7, VIP_PORT, TCP_SYN, &[])).frame();
        let silent = FrontendStats {
            packets: 1,
            bytes: drop_syn.len() as u64,
            denied_silent: 1,
            ..FrontendStats::default()
        };
        expect(
            &dp,
            "silent-drop SYN",
            &drop_syn,
            XDP_DROP,
            &[Proto::Ipv4, Proto::Tcp],
            [silent, NONE],
        );
        let dgram = V4::new(CLIENT4, VIP4, IPPROTO_UDP, udp(CLIENT_PORT, VIP_PORT, b"x")).frame();
        expect(
            &dp,
            "rejected datagram",
            &dgram,
            XDP_DROP,
            &[Proto::Ipv4, Proto::Udp],
            [denied(dgram.len()), NONE],
        );
        // Another port of the client, or an address outside the list: balanced.
        let ok = V4::new(CLIENT4, VIP4, IPPROTO_TCP, tcp(CLIENT_PORT + 1, VIP_PORT, TCP_SYN, &[])).frame();
        expect(
            &dp,
            "accepted SYN",
            &ok,
            XDP_PASS,
            &[Proto::Ipv4, Proto::Tcp],
            [balanced(ok.len(), true, true, false), NONE],
        );
        let other = V4::new(
            "203.0.113.9".parse().expect("ip"),
            VIP4,
            IPPROTO_TCP,
            tcp(CLIENT_PORT, VIP_PORT, TCP_SYN, &[]),
        )
        .frame();
        expect(
            &dp,
            "SYN from elsewhere",
            &other,
            XDP_PASS,
            &[Proto::Ipv4, Proto::Tcp],
            [balanced(other.len(), true, true, false), NONE],
        );
        // Established flows never meet the rules: a flow accepted before the
        // rules changed to refuse it keeps going.
        let mut r = reject_rules();
        r.rule[0].suites = 0;
        r.rule[0].unless = 1;
        dp.set_rules(0, &r).expect("rules");
        let (_, out) = dp.test_run(&ok).expect("test run");
        let IpAddr::V4(srv) = dissect_and_verify(&out).dst else {
            panic!("IPv4")
        };
        let nat = dissect_and_verify(&out).sport;
        let synack = V4::new(srv, SNAT4, IPPROTO_TCP, tcp(SERVER_PORT, nat, TCP_SYN | TCP_ACK, &[])).frame();
        dp.test_run(&synack).expect("SYN-ACK");
        let ack = V4::new(CLIENT4, VIP4, IPPROTO_TCP, tcp(CLIENT_PORT + 1, VIP_PORT, TCP_ACK, &[])).frame();
        let (action, _) = dp.test_run(&ack).expect("ACK");
        assert_eq!(action_name(action), "XDP_PASS", "the established flow goes on");
        let fresh = V4::new(CLIENT4, VIP4, IPPROTO_TCP, tcp(CLIENT_PORT + 2, VIP_PORT, TCP_SYN, &[])).frame();
        let (action, _) = dp.test_run(&fresh).expect("SYN");
        assert_eq!(action_name(action), "XDP_TX", "a new flow meets the new rules: RST");
    });
}

/// A node of a scale-out: the program loaded and given four IPv4 servers
/// under ids that start at `first_id` (each agent numbers servers by its own
/// history), frontend 0 on the IPv4 VIP, Maglev tables keyed with `seed`.
fn node(seed: u64, first_id: u32) -> Datapath {
    node_with(seed, first_id, NatMode::Full)
}

fn node_with(seed: u64, first_id: u32, nat: NatMode) -> Datapath {
    let sizes = Sizes {
        backends: 1,
        servers: first_id + 4,
        table_size: TABLE,
        flows: 4096,
        maglev_seed: seed,
        ..Sizes::default()
    };
    let mut dp = Datapath::load(sizes, false, XDP_PROGRAM).expect("loading the XDP program (verifier)");
    dp.set_settings(&Settings::with_default_timeouts(TABLE))
        .expect("settings");
    let servers: Vec<PlanServer> = (0..4u8)
        .map(|i| {
            server(
                first_id + u32::from(i),
                &format!("web{i}"),
                IpAddr::from([198, 18, 0, 101 + i]),
            )
        })
        .collect();
    for s in &servers {
        dp.set_server(s, IpAddr::V4(SNAT4), true).expect("server");
    }
    dp.set_maglev(0, &servers, &[1, 1, 2, 1]).expect("maglev table");
    dp.add_frontend(VIP4.into(), VIP_PORT, 0, 0, nat, false)
        .expect("frontend");
    dp
}

/// The server each of `n` client flows (distinct source ports) goes to.
fn picks(dp: &Datapath, n: u16) -> Vec<IpAddr> {
    (0..n)
        .map(|i| {
            let syn = V4::new(CLIENT4, VIP4, IPPROTO_TCP, tcp(20000 + i, VIP_PORT, TCP_SYN, &[])).frame();
            let (_, out) = dp.test_run(&syn).expect("test run");
            dissect_and_verify(&out).dst
        })
        .collect()
}

#[test]
fn nodes_with_one_config_and_seed_send_a_flow_to_the_same_server() {
    if skip_without_root("nodes_with_one_config_and_seed_send_a_flow_to_the_same_server") {
        return;
    }
    in_fresh_netns(|| {
        // Two nodes with different server ids (their own histories), the
        // same config and seed: every flow lands on the same server.
        let (a, b) = (node(7, 0), node(7, 40));
        let (pa, pb) = (picks(&a, 300), picks(&b, 300));
        assert_eq!(pa, pb, "two nodes with the same seed disagree");
        // All four servers get flows, web2 (weight 2) about twice as many.
        let count = |ip: [u8; 4]| pa.iter().filter(|p| **p == IpAddr::from(ip)).count();
        let web2 = count([198, 18, 0, 103]);
        assert!(
            (0..4u8).all(|i| count([198, 18, 0, 101 + i]) > 20) && web2 > count([198, 18, 0, 101]),
            "{pa:?}"
        );
        // Another seed: other tables, so a good share of flows go elsewhere.
        let other = picks(&node(8, 0), 300);
        let moved = pa.iter().zip(&other).filter(|(x, y)| x != y).count();
        assert!(moved > 100, "only {moved} of 300 flows moved with another seed");
    });
}

/// Direct server return: a client's frame leaves as it came but for its
/// MACs (the server's, from the FIB, and the LB's own), with no NAT state;
/// a node that never saw the flow's SYN forwards its next segments to the
/// same server by Maglev (the router's ECMP moved the flow), where full NAT
/// drops them. A SYN's entry is half-open until the client's next segment.
/// An ICMP error about a server's reply (which left the server from the
/// VIP, so the error comes to the VIP, that is to any node) goes on
/// unchanged to that flow's server, from a node with the flow's entry and
/// from one without.
#[test]
fn direct_server_return_changes_only_macs_and_any_node_forwards_a_flow() {
    if skip_without_root("direct_server_return_changes_only_macs_and_any_node_forwards_a_flow") {
        return;
    }
    in_fresh_netns(|| {
        lan_on_v0();
        // Each server's MAC ends in its address's last byte.
        let mac_of = |last: u8| [0x02, 0, 0, 0, 0x01, last];
        for last in 101..105u8 {
            ip(&format!(
                "-4 neigh replace 198.18.0.{last} lladdr 02:00:00:00:01:{last:02x} dev v0 nud permanent"
            ));
        }
        let v0 = nix::net::if_::if_nametoindex("v0").expect("v0's ifindex");
        let (mut a, mut b, mut c, mut full) = (
            node_with(7, 0, NatMode::Dsr),
            node_with(7, 40, NatMode::Dsr),
            node_with(7, 80, NatMode::Dsr),
            node_with(7, 0, NatMode::Full),
        );
        for dp in [&mut a, &mut b, &mut c, &mut full] {
            dp.add_tx_port(v0).expect("v0 into TX_PORTS");
        }
        let mut servers_seen = std::collections::BTreeSet::new();
        for i in 0..40u16 {
            let port = 30000 + i;
            let syn = V4::new(CLIENT4, VIP4, IPPROTO_TCP, tcp(port, VIP_PORT, TCP_SYN, &[])).frame();
            let (action, out) = a.test_run(&syn).expect("test run");
            assert_eq!(action_name(action), "XDP_REDIRECT", "SYN {i}");
            assert_eq!(out[12..], syn[12..], "SYN {i}: the frame changed beyond its MACs");
            assert_eq!(out[6..12], V0_MAC, "SYN {i}: the LB's MAC as the source");
            let server = out[5];
            assert!(
                (101..105).contains(&server) && out[0..6] == mac_of(server),
                "SYN {i}: {:02x?}",
                &out[0..6]
            );
            servers_seen.insert(server);

            let mut key = client_key(CLIENT4.into(), VIP4.into(), IPPROTO_TCP);
            key.sport = port.to_be();
            let flow = flow_of(&a, &key).expect("the SYN's flow");
            assert_eq!(flow.flags & FLOW_HALF_OPEN, FLOW_HALF_OPEN, "SYN {i}: half-open");

            // The flow's next segment, with data: on node A it confirms the
            // flow; node B, which never saw the SYN, sends it to the same
            // server; full NAT drops it there.
            let data = V4::new(
                CLIENT4,
                VIP4,
                IPPROTO_TCP,
                tcp(port, VIP_PORT, TCP_ACK | TCP_PSH, b"hello"),
            )
            .frame();
            // Sent to `server`, the frame unchanged beyond its MACs.
            let as_is = |dp: &Datapath, frame: &[u8], what: &str| {
                let (action, out) = dp.test_run(frame).expect("test run");
                assert_eq!((action_name(action), out[5]), ("XDP_REDIRECT", server), "{what}");
                assert_eq!(out[12..], frame[12..], "{what}: the frame changed beyond its MACs");
            };
            as_is(&a, &data, &format!("segment {i} on node A"));
            let flow = flow_of(&a, &key).expect("the flow");
            assert_eq!(
                flow.flags & FLOW_HALF_OPEN,
                0,
                "segment {i}: confirmed by the client's segment"
            );
            as_is(&b, &data, &format!("segment {i} on node B, which never saw the SYN"));
            let (action, _) = full.test_run(&data).expect("test run");
            assert_eq!(
                action_name(action),
                "XDP_DROP",
                "segment {i}: full NAT has no flow for it"
            );

            // A router's "fragmentation needed" about the server's reply.
            let reply = V4::new(VIP4, CLIENT4, IPPROTO_TCP, tcp(VIP_PORT, port, TCP_ACK, &[0u8; 64])).frame();
            let router = IpAddr::from([198, 19, 0, 1]);
            let error = icmp_error(router, VIP4.into(), 3, 4, [0, 0, 0x05, 0x00], &reply[14..]);
            as_is(
                &a,
                &error,
                &format!("ICMP error about flow {i} on node A, with the flow"),
            );
            as_is(&c, &error, &format!("ICMP error about flow {i} on node C, without it"));
        }
        assert!(servers_seen.len() >= 3, "40 flows went to {servers_seen:?} only");
        // No NAT state: no reply entries at all.
        assert!(a.replies().expect("REPLIES").is_empty(), "DSR made reply entries");
    });
}
