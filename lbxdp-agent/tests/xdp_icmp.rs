//! ICMP through full NAT, end to end: a UDP datagram to a server port where
//! nothing listens makes the server answer "port unreachable" to the LB's
//! address; translated, it reaches the client's socket as ECONNREFUSED, as it
//! would straight to the server. (Untranslated, the LB's own stack would
//! swallow it and the client would wait for an answer that never comes.)
mod common;

use std::{
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

use lbxdp_testbed::Layout;

const PORT: u16 = 5353;

#[test]
fn port_unreachable_reaches_the_client_through_full_nat() {
    let Some(tb) = common::plain_testbed(
        "port_unreachable_reaches_the_client_through_full_nat",
        Layout::OneArm,
        1,
    ) else {
        return;
    };
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend dns\n    bind {}:{PORT}\n    default_backend pool\n\nbackend pool\n    server web1 {}:{PORT}\n",
        tb.lb.v4(),
        tb.backends[0].v4()
    );
    let path = tb.dir().join("haproxy.cfg");
    std::fs::write(&path, cfg).expect("haproxy.cfg");
    let path = path.to_string_lossy().into_owned();
    let mut agent = common::Agent::start(&tb, &["-f", &path, "-i", "eth0", "--stats-interval", "0"]);
    agent.wait_for("balancing", Duration::from_secs(30));

    let vip = SocketAddr::new(tb.lb.v4().into(), PORT);
    let got = tb
        .in_netns(&tb.client, || {
            let sock = UdpSocket::bind("0.0.0.0:0")?;
            sock.connect(vip)?;
            sock.set_read_timeout(Some(Duration::from_secs(3)))?;
            let mut answers = Vec::new();
            for _ in 0..3 {
                sock.send(b"anyone there?")?;
                let mut buf = [0u8; 64];
                answers.push(match sock.recv(&mut buf) {
                    Ok(n) => format!("{n} bytes"),
                    Err(e) => format!("{:?}", e.kind()),
                });
            }
            Ok(answers)
        })
        .expect("UDP from the client");
    let report = agent.stop();
    let fe = &report["frontends"][0];
    eprintln!("the client's socket saw: {got:?}; frontend counters: {fe}");
    assert!(
        got.iter().all(|a| a == "ConnectionRefused"),
        "the server's port-unreachable must reach the client's socket: {got:?}"
    );
    assert!(fe["icmp_errors"].as_u64() >= Some(1), "{fe}");
}
