//! The testbed itself: wiring, real nginx answers, routing through a two-arm
//! LB, and teardown (also after a panic). Needs root; skips loudly without it.
use std::{path::Path, time::Duration};

use lbxdp_testbed::{Layout, Testbed, Topology};

fn skip(test: &str) -> bool {
    match lbxdp_testbed::require_root() {
        Ok(()) => false,
        Err(why) => {
            eprintln!("\n!!! SKIPPED {test}: {why}. Testbeds need root (network namespaces). !!!\n");
            true
        }
    }
}

fn curl(tb: &Testbed, url: &str) -> String {
    let out = tb
        .command(&tb.client, "curl")
        .args(["-sS", "--max-time", "5", "-g", url])
        .output_timeout(Duration::from_secs(10))
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn gone(names: &[String]) -> bool {
    names.iter().all(|n| !Path::new("/run/netns").join(n).exists())
}

#[test]
fn one_arm_backends_answer_with_their_names() {
    if skip("one_arm_backends_answer_with_their_names") {
        return;
    }
    let tb = Testbed::build(&Topology {
        layout: Layout::OneArm,
        backends: 3,
        nginx: true,
        default_offloads: false,
    })
    .expect("testbed");
    let names = tb.namespaces();
    assert_eq!(names.len(), 6, "switch, client, lb and 3 backends: {names:?}");
    for b in &tb.backends {
        assert_eq!(curl(&tb, &format!("http://{}/", b.v4())), format!("{}\n", b.name));
        assert_eq!(curl(&tb, &format!("http://[{}]/", b.v6())), format!("{}\n", b.name));
    }
    let out = tb
        .command(&tb.lb, "ping")
        .args(["-c", "1", "-W", "2", &tb.client.v4().to_string()])
        .output_timeout(Duration::from_secs(10))
        .expect("ping");
    assert!(out.status.success(), "lb cannot reach the client");
    drop(tb);
    assert!(gone(&names), "namespaces left after drop: {names:?}");
}

#[test]
fn two_arm_client_reaches_backends_through_the_lb() {
    if skip("two_arm_client_reaches_backends_through_the_lb") {
        return;
    }
    let tb = Testbed::build(&Topology {
        layout: Layout::TwoArm,
        backends: 2,
        nginx: true,
        default_offloads: false,
    })
    .expect("testbed");
    assert_eq!(tb.lb.ifaces.len(), 2);
    assert_ne!(
        tb.client.v4().octets()[2],
        tb.backends[0].v4().octets()[2],
        "client and backends share a segment"
    );
    for b in &tb.backends {
        assert_eq!(curl(&tb, &format!("http://{}/", b.v4())), format!("{}\n", b.name));
        assert_eq!(curl(&tb, &format!("http://[{}]/", b.v6())), format!("{}\n", b.name));
    }
    // The path really goes through the LB: one extra hop.
    let out = tb
        .command(&tb.client, "ping")
        .args(["-c", "1", "-W", "2", &tb.backends[0].v4().to_string()])
        .output_timeout(Duration::from_secs(10))
        .expect("ping");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ttl=63"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_panicking_test_still_tears_down() {
    if skip("a_panicking_test_still_tears_down") {
        return;
    }
    let names = std::sync::Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(|| {
        let tb = Testbed::build(&Topology {
            layout: Layout::OneArm,
            backends: 1,
            nginx: true,
            default_offloads: false,
        })
        .expect("testbed");
        *names.lock().unwrap_or_else(|e| e.into_inner()) = tb.namespaces();
        panic!("a test failing half-way");
    });
    assert!(result.is_err());
    let names = names.into_inner().unwrap_or_else(|e| e.into_inner());
    assert!(!names.is_empty());
    assert!(gone(&names), "namespaces left after a panic: {names:?}");
}

#[test]
fn ecmp_client_reaches_servers_through_the_router() {
    if skip("ecmp_client_reaches_servers_through_the_router") {
        return;
    }
    let tb = Testbed::build(&Topology {
        layout: Layout::Ecmp { nodes: 3 },
        backends: 2,
        nginx: true,
        default_offloads: false,
    })
    .expect("testbed");
    let names = tb.namespaces();
    assert_eq!(names.len(), 8, "switch, client, router, 3 nodes, 2 servers: {names:?}");
    let router = tb.router().expect("router").clone();
    assert_eq!(tb.lb.name, "lb1");
    assert_eq!(
        tb.nodes.iter().map(|n| n.v4().to_string()).collect::<Vec<_>>(),
        ["198.18.0.2", "198.18.0.3", "198.18.0.4"]
    );
    // The client is on its own segment: every answer crossed the router.
    for b in &tb.backends {
        assert_eq!(curl(&tb, &format!("http://{}/", b.v4())), format!("{}\n", b.name));
        assert_eq!(curl(&tb, &format!("http://[{}]/", b.v6())), format!("{}\n", b.name));
    }
    let hops = tb.next_hops(lbxdp_testbed::ecmp::VIP).expect("next hops");
    assert!(hops.is_empty(), "no route to the VIP before BGP: {hops:?}");
    // The nodes' bridge ports don't flood unknown unicast (as a NIC filters
    // other hosts' frames); the servers' and the router's do.
    let out = tb
        .switch_command("bridge")
        .args(["-d", "link", "show"])
        .output_timeout(Duration::from_secs(5))
        .expect("bridge link");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let flood_of = |port: &str| {
        let at = text
            .find(&format!("{port}@"))
            .unwrap_or_else(|| panic!("no {port}: {text}"));
        let rest = &text[at..];
        let end = rest[1..].find(": v").map_or(rest.len(), |e| e + 1);
        !rest[..end].contains("flood off")
    };
    assert!(!flood_of("v0-lb2"), "{text}");
    assert!(flood_of("v0-web1"), "{text}");
    let out = tb
        .command(&router, "sysctl")
        .args([
            "-n",
            "net.ipv4.fib_multipath_hash_policy",
            "net.ipv4.fib_multipath_hash_fields",
        ])
        .arg("net.ipv4.ip_forward")
        .output_timeout(Duration::from_secs(5))
        .expect("sysctl");
    // Policy 3 with fields 0x37 (55): the 5-tuple, read from the headers.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3\n55\n1\n");
    drop(tb);
    assert!(gone(&names), "namespaces left after drop: {names:?}");
}
