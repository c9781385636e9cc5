//! The agent with its default flags on veths as Linux makes them (TX checksum
//! offload on, no XDP program on the peer), as in containers: auto mode must
//! not black-hole the VIP. Native mode there bounces frames that either never
//! arrive (no program on the peer) or carry half-done checksums.
mod common;

use std::time::Duration;

use common::Agent;
use lbxdp_testbed::Layout;

const REQUESTS: usize = 30;

#[test]
fn auto_mode_serves_a_plain_veth() {
    let Some(tb) = common::plain_testbed("auto_mode_serves_a_plain_veth", Layout::OneArm, 2) else {
        return;
    };
    let cfg = common::write_config(&tb, &common::web_config(&tb, ""));
    let mut agent = Agent::start(&tb, &["-f", &cfg, "-i", "eth0", "--stats-interval", "0"]);
    let why = agent.wait_for("is a veth", Duration::from_secs(30));
    assert!(why.contains("generic"), "the choice and its reason: {why}");
    assert_eq!(agent.attached_mode(), "generic");
    agent.wait_for("balancing", Duration::from_secs(30));

    let url = format!("http://{}/", tb.lb.v4());
    let mut answers = Vec::new();
    for _ in 0..REQUESTS {
        let out = tb
            .command(&tb.client, "curl")
            .args(["-sS", "--max-time", "3", "-H", "Connection: close", &url])
            .output_timeout(Duration::from_secs(10))
            .expect("curl");
        answers.push(if out.status.success() {
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        } else {
            format!("error: {}", String::from_utf8_lossy(&out.stderr).trim())
        });
    }
    let served = answers.iter().filter(|a| a.starts_with("web")).count();
    assert_eq!(served, REQUESTS, "answers: {answers:?}\nagent:\n{}", agent.log());
    let report = agent.stop();
    assert_eq!(report["mode"], "generic", "{report}");
    assert!(
        report["frontends"][0]["new_flows"].as_u64() >= Some(REQUESTS as u64),
        "the requests went through XDP: {report}"
    );
}
