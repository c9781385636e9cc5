//! The balancers' reports: connections per server and trouble counters.
use serde_json::Value;

/// Servers and their connections from a report: new flows (XDP) or sessions
/// (`stot`, proxy); servers of the iperf3 backend as `backend/name`.
pub(super) fn server_counts(report: &Value) -> Vec<(String, u64)> {
    let key = |backend: &str, name: &str| {
        if backend.is_empty() || backend == "nginx-servers" {
            name.to_string()
        } else {
            format!("{backend}/{name}")
        }
    };
    if report["mode"] == "proxy" {
        report["proxy"]["backends"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|b| {
                let backend = b["name"].as_str().unwrap_or("");
                b["servers"].as_array().into_iter().flatten().map(move |s| {
                    (
                        key(backend, s["name"].as_str().unwrap_or("?")),
                        s["stot"].as_u64().unwrap_or(0),
                    )
                })
            })
            .collect()
    } else {
        report["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    key(s["backend"].as_str().unwrap_or(""), s["name"].as_str().unwrap_or("?")),
                    s["new_flows"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }
}

/// A one-line note on a run's balancer report, for the progress line.
pub(super) fn report_note(report: &Value) -> String {
    let mode = report["mode"].as_str().unwrap_or("?");
    if mode == "xdp-tx-floor" {
        return String::new();
    }
    if mode == "haproxy" {
        let n = report["log_alerts_warnings"].as_array().map_or(0, Vec::len);
        return if n > 0 {
            format!("  haproxy: {n} ALERT/WARNING log line(s)")
        } else {
            String::new()
        };
    }
    let counts: Vec<String> = server_counts(report)
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    let mut note = format!(
        "  {} {}",
        if mode == "proxy" { "sessions" } else { "flows" },
        counts.join(" ")
    );
    let problems = problems(report);
    if problems.iter().any(|(_, n)| *n > 0) {
        let d: Vec<String> = problems
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        note.push_str(&format!(
            ", {} {}",
            if mode == "proxy" { "problems" } else { "DROPS" },
            d.join(" ")
        ));
    }
    note
}

const DROP_KINDS: [&str; 5] = [
    "drop_no_server",
    "drop_no_port",
    "drop_table_full",
    "drop_no_neigh",
    "passed",
];

/// The proxy's counters of trouble, as (name, where it is summed from).
const PROXY_SERVER_PROBLEMS: [&str; 5] = ["econ", "wretr", "cli_abrt", "srv_abrt", "killed"];
const PROXY_BACKEND_PROBLEMS: [&str; 2] = ["nosrv", "queue_timeouts"];
const PROXY_FRONTEND_PROBLEMS: [&str; 2] = ["denied", "accept_errors"];

/// A report's trouble counters: XDP frontends' drops (and passes), the
/// proxy's errors and aborts, haproxy's ALERT/WARNING log lines.
pub(super) fn problems(report: &Value) -> Vec<(&'static str, u64)> {
    let sum = |list: &Value, k: &str| -> u64 {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|x| x[k].as_u64().unwrap_or(0))
            .sum()
    };
    match report["mode"].as_str() {
        // nftables and the floor program keep no trouble counters.
        Some("nftables" | "nftables-jhash" | "nftables-dnat" | "xdp-tx-floor") => Vec::new(),
        Some("haproxy") => vec![(
            "log_alerts_warnings",
            report["log_alerts_warnings"].as_array().map_or(0, |a| a.len() as u64),
        )],
        Some("proxy") => {
            let p = &report["proxy"];
            let servers: Vec<Value> = p["backends"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|b| b["servers"].as_array().cloned().unwrap_or_default())
                .collect();
            let servers = Value::Array(servers);
            PROXY_SERVER_PROBLEMS
                .iter()
                .map(|&k| (k, sum(&servers, k)))
                .chain(PROXY_BACKEND_PROBLEMS.iter().map(|&k| (k, sum(&p["backends"], k))))
                .chain(PROXY_FRONTEND_PROBLEMS.iter().map(|&k| (k, sum(&p["frontends"], k))))
                .collect()
        }
        _ => DROP_KINDS.iter().map(|&k| (k, sum(&report["frontends"], k))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn counters_from_reports() {
        let xdp = json!({"mode": "native",
            "frontends": [{"name": "web", "drop_no_server": 1}, {"name": "iperf", "drop_no_server": 2}],
            "servers": [{"backend": "nginx-servers", "name": "web1", "new_flows": 10},
                        {"backend": "iperf-server", "name": "web1", "new_flows": 2}]});
        assert_eq!(
            server_counts(&xdp),
            [("web1".to_string(), 10), ("iperf-server/web1".to_string(), 2)]
        );
        assert_eq!(problems(&xdp)[0], ("drop_no_server", 3));
        let proxy = json!({"mode": "proxy", "proxy": {
            "frontends": [{"name": "web", "denied": 4}],
            "backends": [{"name": "nginx-servers", "nosrv": 1,
                          "servers": [{"name": "web2", "stot": 5, "econ": 3}]}]}});
        assert_eq!(server_counts(&proxy), [("web2".to_string(), 5)]);
        let p = problems(&proxy);
        assert!(p.contains(&("econ", 3)) && p.contains(&("nosrv", 1)) && p.contains(&("denied", 4)));
        assert!(report_note(&proxy).contains("sessions web2=5"));
        let ha = json!({"mode": "haproxy", "log_alerts_warnings": ["[WARNING] x"]});
        assert_eq!(problems(&ha), [("log_alerts_warnings", 1)]);
    }
}
