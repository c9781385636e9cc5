//! HAProxy's own monitoring clients on the stats socket: Debian's
//! prometheus-haproxy-exporter (0.14) and hatop (0.8), against lbxdp in XDP
//! and proxy mode and against real HAProxy 2.6 as the reference. Needs
//! root; skips loudly without it.
mod common;

use std::time::Duration;

use common::{
    clients::{self, Exporter, metric},
    runtime::{Bed, Target},
};

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

each_target!(exporter, hatop);

const EXPORTER_PORT: u16 = 9101;

/// The exporter reads `show info` and `show stat`; HAProxy's states map to
/// haproxy_server_up as it maps them (MAINT 0, DRAIN 1, DOWN 0).
fn exporter(target: Target) {
    let _one = serial();
    let Some(bed) = Bed::start("exporter", target) else {
        return;
    };
    let exporter = Exporter::start(&bed.tb, &bed.tb.lb, &bed.admin, EXPORTER_PORT);
    let up = |text: &str, server: &str| metric(text, "haproxy_server_up", &[("backend", "be"), ("server", server)]);

    let text = exporter.metrics();
    assert_eq!(
        metric(&text, "haproxy_up", &[]),
        Some(1.0),
        "haproxy_up; exporter log:\n{}\n{text}",
        exporter.log()
    );
    assert_eq!(
        metric(&text, "haproxy_exporter_csv_parse_failures_total", &[]),
        Some(0.0)
    );
    for s in ["s1", "s2", "s3"] {
        assert_eq!(up(&text, s), Some(1.0), "haproxy_server_up for {s}:\n{text}");
        assert_eq!(
            metric(&text, "haproxy_server_weight", &[("backend", "be"), ("server", s)]),
            Some(1.0),
            "{text}"
        );
    }
    assert_eq!(metric(&text, "haproxy_backend_up", &[("backend", "be")]), Some(1.0));
    assert!(
        metric(&text, "haproxy_frontend_current_sessions", &[("frontend", "web")]).is_some(),
        "{text}"
    );

    assert_eq!(bed.admin("set server be/s1 state maint"), "\n");
    exporter.wait_for("s1 at 0 in MAINT", Duration::from_secs(5), |t| up(t, "s1") == Some(0.0));
    assert_eq!(bed.admin("set server be/s1 state drain"), "\n");
    exporter.wait_for("s1 at 1 in DRAIN", Duration::from_secs(5), |t| up(t, "s1") == Some(1.0));
    assert_eq!(bed.admin("set server be/s1 state ready"), "\n");

    bed.tb.stop_nginx(&bed.host_of("s2"), 80).expect("stopping s2's nginx");
    let text = exporter.wait_for("s2 at 0 when DOWN", Duration::from_secs(5), |t| {
        up(t, "s2") == Some(0.0)
    });
    assert_eq!(up(&text, "s1"), Some(1.0), "{text}");
    assert_eq!(up(&text, "s3"), Some(1.0), "{text}");
}

/// hatop's first screen lists every server with its state.
fn hatop(target: Target) {
    let _one = serial();
    let Some(bed) = Bed::start("hatop", target) else {
        return;
    };
    let screen = clients::hatop(&bed.tb, &bed.tb.lb, &bed.admin);
    let status = |s: &str, server: &str| clients::hatop_status(s, server);
    let all_up = |s: &str| {
        ["s1", "s2", "s3"]
            .iter()
            .all(|sv| status(s, sv).as_deref() == Some("UP"))
    };
    let shown = screen.wait_for("s1, s2 and s3 UP", Duration::from_secs(10), all_up);
    assert!(shown.contains(">>> be"), "the backend's heading:\n{shown}");
    assert!(shown.contains(">>> web"), "the frontend's heading:\n{shown}");
    assert_eq!(status(&shown, "BACKEND").as_deref(), Some("UP"), "{shown}");

    assert_eq!(bed.admin("set server be/s1 state maint"), "\n");
    assert_eq!(bed.admin("set server be/s2 state drain"), "\n");
    screen.wait_for("s1 MAINT and s2 DRAIN", Duration::from_secs(10), |s| {
        status(s, "s1").as_deref() == Some("MAINT") && status(s, "s2").as_deref() == Some("DRAIN")
    });
}
