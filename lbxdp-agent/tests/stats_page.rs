//! The stats page as a user's browser shows it (headless chromium in the
//! client's namespace), its `;csv` export and the built-in Prometheus
//! exporter on the stats frontend; lbxdp in XDP and proxy mode, and real
//! HAProxy 2.6 as the reference. Needs root; skips loudly without it.
mod common;

use std::time::{Duration, Instant};

use common::{
    clients::{self, PageServer, metric},
    runtime::{Bed, HAPROXY_STAT_HEADER, Stat, Target, artifact_path},
};

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

each_target!(stats_page);

fn page_servers(dom: &str) -> Vec<(String, Option<PageServer>)> {
    ["s1", "s2", "s3"]
        .iter()
        .map(|s| (s.to_string(), clients::page_server(dom, "be", s)))
        .collect()
}

fn stats_page(target: Target) {
    let _one = serial();
    let Some(bed) = Bed::start("stats_page", target) else {
        return;
    };
    let client = bed.tb.client.clone();
    let page = bed.stats_url("/stats");

    let png = bed.tb.dir().join("stats-page.png");
    clients::screenshot(&bed.tb, &client, &page, &png);
    let keep = artifact_path(&format!("stats-page-{}.png", target.name()));
    std::fs::copy(&png, &keep).unwrap_or_else(|e| panic!("copying the screenshot to {}: {e}", keep.display()));
    eprintln!("stats page screenshot: {}", keep.display());

    let dom = clients::dump_dom(&bed.tb, &client, &page);
    for (name, row) in page_servers(&dom) {
        let row = row.unwrap_or_else(|| panic!("no row for be/{name} on the page:\n{dom}"));
        assert_eq!(row.status, "UP", "be/{name} on the page");
        assert_eq!(row.class, "active_up", "be/{name}'s row colour");
    }

    let csv = clients::curl(&bed.tb, &client, &bed.stats_url("/stats;csv")).expect("the page's ;csv");
    assert_eq!(csv.lines().next(), Some(HAPROXY_STAT_HEADER), "the CSV export's header");
    let stat = Stat::parse(&csv);
    for s in ["s1", "s2", "s3"] {
        assert_eq!(stat.get("be", s, "status"), Some("UP"), "{csv}");
    }
    assert_eq!(stat.get("web", "FRONTEND", "status"), Some("OPEN"), "{csv}");

    let metrics = clients::curl(&bed.tb, &client, &bed.stats_url("/metrics")).expect("the stats frontend's /metrics");
    let status = |text: &str, server: &str, state: &str| {
        metric(
            text,
            "haproxy_server_status",
            &[("proxy", "be"), ("server", server), ("state", state)],
        )
    };
    for s in ["s1", "s2", "s3"] {
        assert_eq!(status(&metrics, s, "UP"), Some(1.0), "{s} UP in /metrics:\n{metrics}");
        for state in ["DOWN", "MAINT", "DRAIN", "NOLB"] {
            assert_eq!(status(&metrics, s, state), Some(0.0), "{s} {state} in /metrics");
        }
    }

    // A stopped server: DOWN on the page (one failed check with `fall 1`).
    bed.tb.stop_nginx(&bed.host_of("s2"), 80).expect("stopping s2's nginx");
    let deadline = Instant::now() + Duration::from_secs(20);
    let dom = loop {
        let dom = clients::dump_dom(&bed.tb, &client, &page);
        let rows = page_servers(&dom);
        let s2_down = rows
            .iter()
            .any(|(n, r)| n == "s2" && r.as_ref().is_some_and(|r| r.status == "DOWN"));
        if s2_down {
            break dom;
        }
        assert!(Instant::now() < deadline, "s2 never DOWN on the page: {rows:?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let rows = page_servers(&dom);
    for (name, row) in rows {
        let row = row.unwrap_or_else(|| panic!("no row for be/{name}"));
        let (status, class) = if name == "s2" {
            ("DOWN", "active_down")
        } else {
            ("UP", "active_up")
        };
        assert_eq!((row.status.as_str(), row.class.as_str()), (status, class), "be/{name}");
    }
    let down_png = bed.tb.dir().join("stats-page-down.png");
    clients::screenshot(&bed.tb, &client, &page, &down_png);

    let metrics = clients::curl(&bed.tb, &client, &bed.stats_url("/metrics")).expect("/metrics again");
    assert_eq!(status(&metrics, "s2", "DOWN"), Some(1.0), "s2 DOWN in /metrics");
    assert_eq!(status(&metrics, "s2", "UP"), Some(0.0), "s2 not UP in /metrics");
    assert_eq!(status(&metrics, "s1", "UP"), Some(1.0), "s1 UP in /metrics");
}
