//! The whole pipeline on small texts: what the model holds, and which
//! diagnostics come out where.
use std::time::Duration;

use super::*;

const SEED: &str = include_str!("../../tests/configs/valid/seed.cfg");

fn ok(text: &str) -> (Config, Vec<Diag>) {
    match parse_str("t.cfg", text) {
        Ok(x) => x,
        Err(d) => panic!("unexpected alerts: {d:#?}"),
    }
}

fn alerts(text: &str) -> Vec<Diag> {
    match parse_str("t.cfg", text) {
        Ok((_, d)) => panic!("expected an alert, got only: {d:#?}"),
        Err(d) => d.into_iter().filter(Diag::is_alert).collect(),
    }
}

const TIMEOUTS: &str = "defaults\n timeout client 1s\n timeout connect 1s\n timeout server 1s\n";

#[test]
fn seed_resolves_completely() {
    let (c, warnings) = ok(SEED);
    assert!(warnings.iter().all(|d| !d.is_alert()));
    assert_eq!(c.global.maxconn, Some(4096));
    assert!(c.global.daemon);
    assert_eq!(c.global.logs[0].facility, "local2");
    assert_eq!(c.global.stats_sockets[0].address, "/var/lib/haproxy/stats");
    assert_eq!(c.frontends.len(), 1);
    let fe = &c.frontends[0];
    assert_eq!(fe.name, "nginx");
    assert_eq!(fe.binds[0].addr.ip, Some("0.0.0.0".parse().unwrap()));
    assert_eq!(fe.binds[0].addr.ports, 80..=80);
    assert_eq!(fe.backend.as_deref(), Some("nginx-servers"));
    assert_eq!(fe.maxconn, Some(2048));
    assert_eq!(fe.timeout_client, Some(Duration::from_secs(60)));
    assert_eq!(fe.logs.len(), 1, "log global brings the global log target");
    let be = c.backend("nginx-servers").unwrap();
    assert_eq!(be.balance, Balance::RoundRobin);
    assert_eq!(be.retries, 3);
    assert_eq!(be.redispatch, Some(-1));
    assert_eq!(be.timeouts.connect, Some(Duration::from_secs(10)));
    assert_eq!(be.timeouts.queue, Some(Duration::from_secs(60)));
    assert_eq!(be.servers.len(), 3);
    let s = &be.servers[2];
    assert_eq!(s.addr, "198.18.0.103".parse::<std::net::IpAddr>().unwrap());
    assert_eq!(s.port, PortSpec::Fixed(80));
    assert_eq!(s.weight, 1);
    let chk = s.check.as_ref().unwrap();
    assert_eq!((chk.inter, chk.rise, chk.fall), (Duration::from_secs(10), 2, 2));
    assert_eq!(chk.fastinter, Duration::from_secs(10));
    assert_eq!(be.health_check, HealthCheck::Connect);
}

#[test]
fn defaults_flow_and_proxies_override() {
    let text = format!(
        "{TIMEOUTS} balance leastconn\n default-server inter 3s fall 5\n\
         listen app\n bind :8000-8002,[::]:9000 interface eth0\n timeout server 5s\n\
         server a 198.18.0.1 check rise 4 port 8080\n server b 198.18.0.2:+1 weight 0 backup\n"
    );
    let (c, _) = ok(&text);
    let be = c.backend("app").unwrap();
    assert_eq!(be.balance, Balance::LeastConn);
    assert_eq!(be.timeouts.server, Some(Duration::from_secs(5)));
    assert_eq!(be.timeouts.connect, Some(Duration::from_secs(1)));
    let a = be.servers[0].check.as_ref().unwrap();
    assert_eq!((a.inter, a.rise, a.fall), (Duration::from_secs(3), 4, 5));
    assert_eq!((be.servers[0].port, a.port), (PortSpec::Offset(0), Some(8080)));
    assert_eq!(be.servers[1].port, PortSpec::Offset(1));
    assert!(be.servers[1].backup && be.servers[1].check.is_none());
    let fe = &c.frontends[0];
    assert_eq!(
        fe.backend.as_deref(),
        Some("app"),
        "a listen section is its own backend"
    );
    assert_eq!(fe.binds.len(), 2);
    assert_eq!(fe.binds[0].addr.ports, 8000..=8002);
    assert_eq!(fe.binds[0].interface.as_deref(), Some("eth0"));
}

#[test]
fn named_defaults_and_from() {
    let text = format!(
        "defaults base\n mode tcp\n timeout client 2s\n timeout connect 2s\n timeout server 2s\n\
         defaults other from base\n balance source\n\
         frontend f from base\n bind :80\n use_backend b\n default_backend c\n\
         backend b\n server s 198.18.0.1:80\nbackend c\n{}",
        ""
    );
    let (c, _) = ok(&text);
    assert_eq!(
        c.frontends[0].backend.as_deref(),
        Some("b"),
        "unconditional use_backend wins"
    );
    assert_eq!(
        c.backend("b").unwrap().balance,
        Balance::Source,
        "the last defaults applies"
    );
    let alerts = alerts("frontend f from nope\n bind :80\n");
    assert!(
        alerts[0].message.contains("defaults section 'nope' not found"),
        "{alerts:?}"
    );
}

#[test]
fn mode_http_is_balanced_as_tcp_with_a_warning() {
    let (c, w) = ok(&format!(
        "{TIMEOUTS}frontend f\n mode http\n bind :80\n default_backend b\nbackend b\n mode http\n"
    ));
    assert_eq!(c.frontends[0].mode, Mode::Http);
    assert!(
        w.iter().any(|d| d.message.contains("layer 4") && d.origin.line == 6),
        "{w:?}"
    );
}

#[test]
fn an_http_frontend_refuses_a_tcp_backend_as_haproxy_does() {
    let a = alerts(&format!(
        "{TIMEOUTS}frontend f\n mode http\n bind :80\n use_backend c if TRUE\n default_backend b\nbackend b\n\
         backend c\n"
    ));
    let lines: Vec<usize> = a.iter().map(|d| d.origin.line).collect();
    assert_eq!(lines, [8, 9], "{a:?}");
    assert_eq!(
        a[1].message,
        "http frontend 'f' (t.cfg:5) tries to use incompatible tcp backend 'b' (t.cfg:10) as its default backend \
         (see 'mode')."
    );
    assert!(
        a[0].message.contains("backend 'c' (t.cfg:11) in a 'use_backend' rule"),
        "{a:?}"
    );
    // A TCP frontend may use an HTTP backend: HAProxy upgrades the connection.
    ok(&format!(
        "{TIMEOUTS}frontend f\n bind :80\n default_backend b\nbackend b\n mode http\n"
    ));
}

#[test]
fn http_directives_warn_and_unknown_ones_alert() {
    let (_, w) = ok(&format!(
        "{TIMEOUTS}frontend f\n bind :80\n http-request deny\n option httplog\n default_backend b\nbackend b\n"
    ));
    assert!(
        w.iter()
            .filter(|d| d.message.contains("not applied at layer 4"))
            .count()
            >= 2,
        "{w:?}"
    );
    let a = alerts(&format!("{TIMEOUTS}frontend f\n bind :80\n frobnicate 3\n"));
    assert_eq!(a[0].origin.line, 7);
    assert!(a[0].message.contains("unknown keyword 'frobnicate'"));
}

#[test]
fn validation_errors_carry_file_and_line() {
    let base = format!("{TIMEOUTS}frontend f\n bind :80\n default_backend b\nbackend b\n");
    let cases = [
        (
            format!("{TIMEOUTS}frontend f\n bind :80\n default_backend nope\n"),
            7,
            "unable to find required default_backend",
        ),
        (
            format!("{TIMEOUTS}frontend f\n bind :80\n use_backend nope\n"),
            7,
            "use_backend",
        ),
        (format!("{base}backend b\n"), 9, "same name"),
        (
            format!("{base} server s 198.18.0.1:80\n server s 198.18.0.2:80\n"),
            10,
            "another server named 's'",
        ),
        (format!("{base} server s 198.18.0.1:70000\n"), 9, "invalid port"),
        (format!("{base} server s 198.18.0.999:80\n"), 9, "not an IP address"),
        (
            format!("{base} server s 198.18.0.1:80 weight 257\n"),
            9,
            "not within 0 and 256",
        ),
        (
            format!("{base} server s 198.18.0.1:80 rise 0\n"),
            9,
            "'rise' has to be > 0",
        ),
        (
            format!("{base} server s 198.18.0.1:80 fall 0\n"),
            9,
            "'fall' has to be > 0",
        ),
        (format!("{base} timeout check 10x\n"), 9, "unexpected character 'x'"),
        (
            format!("{TIMEOUTS}frontend f\n bind :80\n server s 198.18.0.1:80\n"),
            7,
            "no backend capability",
        ),
        (
            format!("{TIMEOUTS}frontend f\n bind \"unterminated\n"),
            6,
            "unmatched quote",
        ),
    ];
    for (text, line, needle) in cases {
        let a = alerts(&text);
        assert!(
            a.iter()
                .any(|d| d.origin.line == line && d.message.contains(needle) && d.origin.file == "t.cfg"),
            "wanted '{needle}' at line {line} in:\n{text}\ngot {a:#?}"
        );
    }
}

/// A file with no `bind` has no error for HAProxy; it will not start
/// (`-c` exits 2 and the agent refuses it, see main.rs and config_files).
#[test]
fn no_listener_is_counted_not_an_error() {
    let (c, diags) = ok(&format!("{TIMEOUTS}backend b\n server s 198.18.0.1:80\n"));
    assert_eq!(c.listeners, 0);
    assert!(diags.iter().all(|d| !d.is_alert()), "{diags:?}");
    let (c, _) = ok(&format!(
        "{TIMEOUTS}frontend f\n bind :80\n bind :81\n default_backend b\nbackend b\n server s 198.18.0.1:80\n"
    ));
    assert_eq!(c.listeners, 2);
    // Debian's haproxy.cfg has no frontend, only its CLI socket: it starts.
    let (c, _) = ok(&format!(
        "global\n stats socket /run/haproxy/admin.sock mode 660 level admin\n{TIMEOUTS}backend b\n server s \
         198.18.0.1:80\n"
    ));
    assert_eq!(c.listeners, 1);
}

#[test]
fn haproxy_warnings_are_warnings() {
    let (_, w) = ok("frontend f\n bind :80\n default_backend b\nbackend b\n server s 198.18.0.1:80\n");
    assert_eq!(
        w.iter().filter(|d| d.message.contains("missing timeouts")).count(),
        2,
        "{w:?}"
    );
    let (_, w) = ok(&format!("{TIMEOUTS}frontend f\n bind :80\nfrontend g\n"));
    assert!(w.iter().any(|d| d.message.contains("no 'bind'")));
}

#[test]
fn several_sources_share_defaults_but_not_sections() {
    let a = Source {
        name: "a.cfg",
        data: TIMEOUTS.as_bytes(),
    };
    let b = Source {
        name: "b.cfg",
        data: b"frontend f\n bind :80\n",
    };
    let (c, _) = parse_sources(&[a, b], &|_| None).unwrap();
    assert_eq!(c.frontends[0].timeout_client, Some(Duration::from_secs(1)));
    let c2 = Source {
        name: "c.cfg",
        data: b" server s 198.18.0.1:80\n",
    };
    let d = parse_sources(&[a, b, c2], &|_| None).unwrap_err();
    assert!(
        d.iter()
            .any(|d| d.origin.file == "c.cfg" && d.message.contains("out of section")),
        "{d:?}"
    );
}

#[test]
fn environment_comes_from_the_caller() {
    let text = format!("{TIMEOUTS}frontend f\n bind \"${{ADDR}}:${{PORT-81}}\"\n");
    let env = |n: &str| (n == "ADDR").then(|| "198.18.0.7".to_string());
    let (c, _) = parse_sources(
        &[Source {
            name: "t",
            data: text.as_bytes(),
        }],
        &env,
    )
    .unwrap();
    assert_eq!(c.frontends[0].binds[0].addr.ip, Some("198.18.0.7".parse().unwrap()));
    assert_eq!(c.frontends[0].binds[0].addr.ports, 81..=81);
}

#[test]
fn checks_are_parsed() {
    let text = format!(
        "{TIMEOUTS}listen l\n bind :80\n option tcp-check\n tcp-check connect port 6379\n \
         tcp-check send PING\\r\\n\n tcp-check send-binary 50494e47\n tcp-check expect string +PONG\n \
         server s 198.18.0.1:6379 check\n\
         listen h\n bind :81\n option httpchk GET /health\n http-check expect status 200\n server s 198.18.0.1:80 check\n\
         listen n\n bind :82\n option httpchk\n http-check expect ! status 500-599\n server s 198.18.0.1:80 check\n"
    );
    let (c, _) = ok(&text);
    let HealthCheck::TcpCheck(steps) = &c.backend("l").unwrap().health_check else {
        panic!("tcp-check")
    };
    assert_eq!(steps.len(), 4);
    assert_eq!(steps[1], TcpCheckStep::Send(b"PING\r\n".to_vec()));
    assert_eq!(steps[2], TcpCheckStep::Send(b"PING".to_vec()));
    match &c.backend("h").unwrap().health_check {
        HealthCheck::Http {
            method,
            uri,
            expect_status,
            ..
        } => {
            assert_eq!(
                (
                    method.as_str(),
                    uri.as_str(),
                    expect_status.as_ref().map(|e| (e.negate, e.codes.as_str()))
                ),
                ("GET", "/health", Some((false, "200")))
            );
        }
        other => panic!("{other:?}"),
    }
    match &c.backend("n").unwrap().health_check {
        HealthCheck::Http {
            expect_status: Some(e), ..
        } => assert_eq!((e.negate, e.codes.as_str()), (true, "500-599")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn conditional_blocks() {
    let text =
        format!("{TIMEOUTS}.if version_atleast(2.4)\nfrontend f\n bind :80\n.else\nfrontend g\n bind :81\n.endif\n");
    let (c, _) = ok(&text);
    assert_eq!(c.frontends.len(), 1);
    assert_eq!(c.frontends[0].name, "f");
}

#[test]
fn missing_final_newline_and_nul_are_errors() {
    assert!(!alerts(&format!("{TIMEOUTS}frontend f\n bind :80")).is_empty());
    assert!(!alerts(&format!("{TIMEOUTS}frontend f\n bind :80\0\n")).is_empty());
}

#[test]
fn garbage_never_panics() {
    let inputs: Vec<Vec<u8>> = vec![
        (0..=255u8).cycle().take(70_000).collect(),
        "listen x\n".repeat(10_000).into_bytes(),
        vec![b'"'; 1 << 20],
        [b"frontend f\n bind :80 ".as_slice(), &vec![b'a'; 1 << 20], b"\n"].concat(),
        vec![0xff, 0xfe, b'\n', 0xc3, b'\n'],
        ".if 1\n".repeat(200).into_bytes(),
    ];
    for data in inputs {
        let _ = parse_sources(&[Source { name: "g", data: &data }], &|_| None);
    }
}

#[test]
fn allbackups_on_marked_and_spread_checks() {
    let text = format!(
        "global\n spread-checks 5\n{TIMEOUTS} option allbackups\nlisten a\n bind :80\n \
         server s 198.18.0.1:80 check on-marked-down shutdown-sessions on-marked-up shutdown-backup-sessions\n \
         server b 198.18.0.2:80 check backup\nlisten n\n bind :81\n no option allbackups\n \
         server s 198.18.0.1:80\n"
    );
    let (c, warnings) = ok(&text);
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_eq!(c.global.spread_checks, Some(5));
    let a = c.backend("a").unwrap();
    assert!(a.allbackups, "inherited from defaults");
    assert_eq!(a.servers[0].on_marked_down, Some(OnMarkedDown::ShutdownSessions));
    assert_eq!(a.servers[0].on_marked_up, Some(OnMarkedUp::ShutdownBackupSessions));
    assert_eq!(a.servers[1].on_marked_down, None);
    assert!(!c.backend("n").unwrap().allbackups);

    let bad = alerts(&format!(
        "{TIMEOUTS}listen a\n bind :80\n server s 198.18.0.1:80 on-marked-down kill\n"
    ));
    assert!(
        bad[0].message.contains("expects 'shutdown-sessions' but got 'kill'"),
        "{bad:#?}"
    );
    assert!(!alerts(&format!("global\n spread-checks 51\n{TIMEOUTS}listen a\n bind :80\n")).is_empty());
}

#[test]
fn a_checked_server_needs_a_port_to_check() {
    let be = |lines: &str| format!("{TIMEOUTS}listen l\n bind :80\n{lines}");
    let first = |lines: &str| {
        let a = alerts(&be(lines));
        (a[0].origin.line, a[0].message.clone())
    };
    let (line, msg) = first(" server s 198.18.0.1 check\n");
    assert_eq!(line, 7);
    assert!(
        msg.ends_with("server 's' has neither service port nor check port."),
        "{msg}"
    );
    let (_, msg) = first(" option httpchk\n server s 198.18.0.1 check\n");
    assert!(
        msg.ends_with("nor tcp_check rule 'connect' with port information."),
        "{msg}"
    );
    let (_, msg) =
        first(" option tcp-check\n tcp-check connect port 1\n tcp-check connect\n server s 198.18.0.1 check\n");
    assert!(
        msg.ends_with("and a tcp_check rule 'connect' with no port information."),
        "{msg}"
    );
    ok(&be(
        " server s 198.18.0.1 check port 80\n server t 198.18.0.2:80 check\n server u 198.18.0.3\n",
    ));
    ok(&be(
        " option tcp-check\n tcp-check connect port 6379\n server s 198.18.0.1 check\n",
    ));
}

/// Each server's `source`, by name, as "addr" or "addr:lo-hi".
fn sources(c: &Config, backend: &str) -> Vec<(String, Option<String>)> {
    let show = |s: &SourceAddr| match &s.ports {
        None => s.addr.to_string(),
        Some(p) => format!("{}:{}-{}", s.addr, p.start(), p.end()),
    };
    c.backend(backend)
        .unwrap()
        .servers
        .iter()
        .map(|s| (s.name.clone(), s.source.as_ref().map(show)))
        .collect()
}

fn pairs(list: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    list.iter()
        .map(|(n, s)| (n.to_string(), s.map(str::to_string)))
        .collect()
}

#[test]
fn source_precedence_is_server_then_default_server_then_backend_then_defaults() {
    let text = format!(
        "{TIMEOUTS} source 198.18.0.1\n\
         frontend f\n bind :80\n default_backend inherits\n\
         backend inherits\n server a 198.18.1.1:80\n\
         backend own\n source 198.18.0.2:1024\n server a 198.18.1.1:80\n server b 198.18.1.2:80 source 198.18.0.3:2000-2999\n\
         backend defsrv\n source 198.18.0.2\n default-server source [fd00::4]:5000\n\
         server a 198.18.1.1:80\n server b 198.18.1.2:80 source 198.18.0.5\n"
    );
    let (c, warnings) = ok(&text);
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert!(c.refused.is_empty(), "{:#?}", c.refused);
    assert_eq!(
        sources(&c, "inherits"),
        pairs(&[("a", Some("198.18.0.1"))]),
        "from defaults"
    );
    assert_eq!(
        sources(&c, "own"),
        pairs(&[("a", Some("198.18.0.2:1024-1024")), ("b", Some("198.18.0.3:2000-2999"))]),
        "the backend's replaces the defaults'; the server line's wins over both"
    );
    assert_eq!(
        sources(&c, "defsrv"),
        pairs(&[("a", Some("fd00::4:5000-5000")), ("b", Some("198.18.0.5"))]),
        "default-server wins over the backend's source; the server line over default-server"
    );
}

#[test]
fn a_defaults_default_server_source_beats_the_backend_source_as_in_haproxy() {
    // HAProxy copies defaults' default-server into each server; a server-level
    // source wins over the proxy-level one wherever it came from.
    let text = format!(
        "{TIMEOUTS} default-server source 198.18.0.7\n\
         listen l\n bind :80\n source 198.18.0.8\n server a 198.18.1.1:80\n\
         listen m\n bind :81\n server a 198.18.1.1:80\n"
    );
    let (c, _) = ok(&text);
    assert_eq!(sources(&c, "l"), pairs(&[("a", Some("198.18.0.7"))]));
    assert_eq!(sources(&c, "m"), pairs(&[("a", Some("198.18.0.7"))]));
    let (c, _) = ok(&format!("{TIMEOUTS}listen l\n bind :80\n server a 198.18.1.1:80\n"));
    assert_eq!(sources(&c, "l"), pairs(&[("a", None)]), "no source anywhere");
}

#[test]
fn source_in_a_frontend_is_ignored_with_haproxys_warning_and_balance_source_still_works() {
    let text = format!(
        "{TIMEOUTS}frontend f\n bind :80\n source 198.18.0.1\n default_backend b\n\
         backend b\n balance source\n server a 198.18.1.1:80\n"
    );
    let (c, w) = ok(&text);
    assert!(
        w.iter()
            .any(|d| d.origin.line == 7
                && d.message == "'source' ignored because frontend 'f' has no backend capability"),
        "{w:#?}"
    );
    let b = c.backend("b").unwrap();
    assert_eq!(b.balance, Balance::Source);
    assert_eq!(b.servers[0].source, None);
}

#[test]
fn source_errors_name_the_line() {
    let base = format!("{TIMEOUTS}listen l\n bind :80\n");
    let cases = [
        (" source 198.18.0.1:1000-2000\n", "port range not permitted here"),
        (" source\n", "'source' expects <addr>[:<port>]"),
        (
            " source 198.18.0.1 via eth0\n",
            "only supports optional keywords 'interface' and 'usesrc'",
        ),
        (" source 198.18.0.1 interface\n", "missing interface name"),
        (" usesrc clientip\n", "'usesrc' only allowed after a 'source' statement"),
        (
            " server a 198.18.1.1:80 usesrc client\n",
            "'usesrc' only allowed after a 'source' statement",
        ),
        (
            " server a 198.18.1.1:80 source 198.18.0.1:2000-1000\n",
            "invalid port range '2000-1000'",
        ),
        (
            " server a 198.18.1.1:80 source 198.18.0.1 usesrc\n",
            "'usesrc' expects <addr>",
        ),
        (" server a 198.18.1.1:80 source ::1\n", "invalid address"),
        (
            " server a 198.18.1.1:80 source lb.example\n",
            "does not resolve host names",
        ),
    ];
    for (line, needle) in cases {
        let text = format!("{base}{line}");
        let a = alerts(&text);
        assert!(
            a.iter().any(|d| d.origin.line == 7 && d.message.contains(needle)),
            "wanted '{needle}' at line 7 in:\n{text}\ngot {a:#?}"
        );
    }
}

#[test]
fn usesrc_and_interface_are_refused_only_where_a_server_uses_them() {
    let text = format!(
        "{TIMEOUTS} source 198.18.0.1 usesrc clientip\n\
         listen l\n bind :80\n default-server source 198.18.0.2\n server a 198.18.1.1:80\n\
         listen m\n bind :81\n server a 198.18.1.1:80 source 198.18.0.3 interface eth1 check port 80\n\
         listen n\n bind :82\n source 198.18.0.4 usesrc client\n server a 198.18.1.1:80\n"
    );
    let (c, w) = ok(&text);
    let got: Vec<(usize, &str, &str, Unsupported)> = c
        .refused
        .iter()
        .map(|r| (r.origin.line, r.directive.as_str(), r.keyword.as_str(), r.what))
        .collect();
    assert_eq!(
        got,
        [
            (12, "server m/a", "interface", Unsupported::SourceInterface),
            (15, "source 198.18.0.4", "usesrc", Unsupported::Usesrc),
        ],
        "the defaults' usesrc is overridden in l (a server-level source) and m, and replaced in n"
    );
    assert_eq!(sources(&c, "m"), pairs(&[("a", Some("198.18.0.3"))]));
    assert!(
        w.iter().all(|d| !d.message.contains("usesrc")),
        "only refusals speak of it: {w:#?}"
    );
    // A server `source` keeps the usesrc it inherits from default-server, as HAProxy's does.
    let (c, _) = ok(&format!(
        "{TIMEOUTS}listen l\n bind :80\n default-server source 198.18.0.1 usesrc clientip\n \
         server a 198.18.1.1:80 source 198.18.0.2\n"
    ));
    assert_eq!(sources(&c, "l"), pairs(&[("a", Some("198.18.0.2"))]));
    assert_eq!(c.refused.len(), 1);
    assert_eq!((c.refused[0].origin.line, c.refused[0].keyword.as_str()), (7, "usesrc"));
}

#[test]
fn tls_and_accept_proxy_are_refused_once_per_place_in_line_order() {
    let text = format!(
        "{TIMEOUTS} default-server ssl verify none\n\
         frontend f\n bind :443 ssl crt /etc/lbxdp/site.pem\n bind :80 accept-proxy\n bind :81\n default_backend b\n\
         backend b\n server a 198.18.1.1:443\n server c 198.18.1.2:443 ca-file /etc/lbxdp/ca.pem verify required\n\
         backend unused\n"
    );
    let (c, w) = ok(&text);
    let got: Vec<(usize, &str, &str)> = c
        .refused
        .iter()
        .map(|r| (r.origin.line, r.directive.as_str(), r.keyword.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (5, "default-server", "ssl"),
            (5, "default-server", "verify"),
            (7, "bind :443", "ssl"),
            (7, "bind :443", "crt"),
            (8, "bind :80", "accept-proxy"),
            (13, "server b/c", "ca-file"),
            (13, "server b/c", "verify"),
        ]
    );
    assert_eq!(c.refused[4].what, Unsupported::AcceptProxy);
    assert!(
        w.iter().all(|d| !d.message.contains("parsed past")),
        "a refused keyword isn't also 'parsed past': {w:#?}"
    );
    let alert = c.refused[2].run_alert().to_string();
    assert_eq!(
        alert,
        "[ALERT] t.cfg:7: 'bind :443': 'ssl' asks for TLS, which lbxdp doesn't do yet; \
         lbxdp-agent refuses to run this configuration rather than serve plaintext where TLS is asked for"
    );
    assert_eq!(
        c.refused[2].check_warning().to_string(),
        "[WARNING] t.cfg:7: 'bind :443': 'ssl' asks for TLS, which lbxdp doesn't do yet; \
         lbxdp-agent will refuse to run this configuration"
    );
    // Files named by crt and ca-file are still checked against the machine, as HAProxy does.
    assert_eq!(c.global.env_refs.len(), 2);
    let (c, _) = ok(&format!(
        "{TIMEOUTS}listen l\n bind :80 alpn h2 ciphers X\n server a 198.18.1.1:80 sni str(x) check-ssl\n"
    ));
    assert!(
        c.refused.is_empty(),
        "other TLS settings don't turn TLS on: {:#?}",
        c.refused
    );
}

#[test]
fn thousands_of_refused_lines_print_a_hundred_and_one_for_the_rest() {
    let servers: String = (0..150)
        .map(|i| format!(" server s{i} 198.18.1.{}:443 ssl\n", i + 1))
        .collect();
    let (c, _) = ok(&format!("{TIMEOUTS}listen l\n bind :443\n{servers}"));
    assert_eq!(c.refused.len(), 150);
    for diags in [c.refusal_warnings(), c.refusal_alerts()] {
        assert_eq!(diags.len(), REFUSALS_SHOWN + 1);
        let last = &diags[REFUSALS_SHOWN];
        assert_eq!(last.origin.line, 7 + REFUSALS_SHOWN);
        assert!(last.message.starts_with("and 50 more place(s) from here on"), "{last}");
    }
    assert!(c.refusal_warnings().iter().all(|d| !d.is_alert()));
    assert!(c.refusal_alerts().iter().all(Diag::is_alert));
}

#[test]
fn seed_has_one_operator_socket_and_haproxy_ids() {
    let (c, _) = ok(SEED);
    let [sock] = c.global.stats_sockets.as_slice() else {
        panic!("one socket: {:?}", c.global.stats_sockets)
    };
    assert_eq!(sock.level, CliLevel::Operator);
    assert_eq!((sock.mode, sock.maxconn, sock.uid), (None, None, None));
    assert_eq!(c.global.stats_maxconn, None);
    assert!(c.refused.is_empty());
    // The socket's CLI frontend comes first and takes id 1, as in HAProxy.
    assert_eq!(c.frontends[0].id, 2);
    assert_eq!(c.backends[0].id, 3);
    let sids: Vec<u32> = c.backends[0].servers.iter().map(|s| s.id).collect();
    assert_eq!(sids, (1..=sids.len() as u32).collect::<Vec<_>>());
}

#[test]
fn stats_socket_options_are_applied() {
    let (c, _) = ok(&format!(
        "global\n stats socket /run/a.sock mode 660 level admin user root group root uid 5x gid 7 maxconn 3\n \
         stats socket ipv4@127.0.0.1:9999 level user maxconn 0 name cli\n stats maxconn 20\n stats timeout 1m\n\
         {TIMEOUTS}listen l\n bind :1\n server s 10.0.0.1:1\n"
    ));
    let [a, b] = c.global.stats_sockets.as_slice() else {
        panic!("two sockets")
    };
    assert_eq!(a.mode, Some(0o660));
    assert_eq!(a.level, CliLevel::Admin);
    assert_eq!((a.user.as_deref(), a.group.as_deref()), (Some("root"), Some("root")));
    assert_eq!((a.uid, a.gid, a.maxconn), (Some(5), Some(7), Some(3)));
    assert_eq!((b.level, b.maxconn), (CliLevel::User, None));
    assert_eq!(c.global.stats_maxconn, Some(20));
    assert_eq!(c.global.stats_timeout, Some(Duration::from_secs(60)));
    assert!(c.refused.is_empty(), "{:?}", c.refused);
    let users: Vec<&str> = c.global.env_refs.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(users, ["root", "root"]);
}

#[test]
fn stats_socket_options_lbxdp_cant_honour_are_refused_with_their_line() {
    let (c, _) = ok(&format!(
        "global\n stats socket /run/a.sock expose-fd listeners\n stats socket /run/b.sock process 1 thread 1\n \
         stats socket :9999 ssl crt /x.pem\n{TIMEOUTS}listen l\n bind :1\n server s 10.0.0.1:1\n"
    ));
    let got: Vec<(usize, &str, Unsupported)> = c
        .refused
        .iter()
        .map(|r| (r.origin.line, r.keyword.as_str(), r.what))
        .collect();
    assert_eq!(
        got,
        [
            (2, "expose-fd", Unsupported::StatsSocket),
            (3, "process", Unsupported::StatsSocket),
            (4, "ssl", Unsupported::Tls),
            (4, "crt", Unsupported::Tls),
        ]
    );
}

#[test]
fn stats_socket_and_stats_errors_are_haproxys() {
    for (line, want) in [
        (
            "stats uid 5",
            "only supports 'socket', 'maxconn', 'bind-process' and 'timeout'",
        ),
        ("stats maxconn x", "'stats maxconn' expects a positive value"),
        ("stats socket /a mode 888", "invalid mode '888'"),
        ("stats socket /a level root", "'level' only supports"),
        ("stats socket /a expose-fd all", "'expose-fd' only supports 'listeners'"),
    ] {
        let a = alerts(&format!("global\n {line}\n{TIMEOUTS}listen l\n bind :1\n"));
        assert!(
            a.iter().any(|d| d.origin.line == 2 && d.message.contains(want)),
            "{line}: {a:?}"
        );
    }
}

#[test]
fn proxy_ids_follow_haproxy_numbering() {
    // Checked against haproxy 2.6's `show stat` iid: the CLI frontend takes
    // a slot, an explicit id is skipped by the count, a listen is one proxy.
    let (c, _) = ok(&format!(
        "global\n stats socket /tmp/s\n{TIMEOUTS}frontend fe1\n bind :1\n default_backend be1\n\
         backend be1\n server s1 10.0.0.1:1\n server s2 10.0.0.1:1 id 7\n server s3 10.0.0.1:1\n \
         server s4 10.0.0.1:1 id 2\n server s5 10.0.0.1:1\n\
         listen li\n bind :2\n server a 10.0.0.1:1\nbackend be2\n id 4\n server x 10.0.0.1:1\n\
         frontend fe2\n bind :3\n default_backend be2\n"
    ));
    let fe: Vec<(&str, u32)> = c.frontends.iter().map(|f| (f.name.as_str(), f.id)).collect();
    let be: Vec<(&str, u32)> = c.backends.iter().map(|b| (b.name.as_str(), b.id)).collect();
    assert_eq!(fe, [("fe1", 2), ("li", 5), ("fe2", 7)]);
    assert_eq!(be, [("be1", 3), ("li", 5), ("be2", 4)]);
    let sids: Vec<u32> = c.backends[0].servers.iter().map(|s| s.id).collect();
    assert_eq!(sids, [1, 7, 3, 2, 5]);

    // Without a global `stats` line before them, proxies start at 1.
    let (c, _) = ok(&format!(
        "{TIMEOUTS}listen a\n bind :1\nlisten b\n bind :2\nglobal\n stats timeout 5s\n"
    ));
    assert_eq!(c.frontends.iter().map(|f| f.id).collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn duplicate_ids_are_haproxys_errors() {
    let a = alerts(&format!(
        "{TIMEOUTS}frontend fe1\n id 5\n bind :1\n default_backend be1\nbackend be1\n id 5\n server s 10.0.0.1:1\n"
    ));
    assert!(
        a.iter().any(|d| d.origin.line == 10
            && d.message
                .contains("backend be1 reuses same custom id as frontend fe1 (declared at t.cfg:5)")),
        "{a:?}"
    );
    let a = alerts(&format!(
        "{TIMEOUTS}listen l\n bind :1\n server s1 10.0.0.1:1 id 1\n server s2 10.0.0.1:1 id 1\n"
    ));
    assert!(
        a.iter()
            .any(|d| d.origin.line == 8 && d.message.contains("custom id 1 already used at t.cfg:7 ('server s1')")),
        "{a:?}"
    );
    let a = alerts(&format!("{TIMEOUTS}listen l\n bind :1\n id 0\n"));
    assert!(a.iter().any(|d| d.message.contains("custom id has to be > 0")));
    // HAProxy alerts on `id` in default-server but the configuration stays valid.
    let (_, w) = ok(&format!(
        "{TIMEOUTS}listen l\n bind :1\n default-server id 3\n server s 10.0.0.1:1\n"
    ));
    assert!(w.iter().any(|d| d.message.contains("not accepted in default-server")));
}

#[test]
fn a_stats_frontend_is_served_by_the_agent() {
    let (c, w) = ok(&format!(
        "global\n node lb1\n{TIMEOUTS}frontend st\n bind :8404\n mode http\n stats enable\n stats uri /stats\n \
         stats refresh 10\n stats auth admin:secret\n stats auth bob\n stats admin if {{ src 10.0.0.0/8 ::1 }}\n \
         stats hide-version\n stats show-node\n stats show-desc \"the lb\"\n stats show-legends\n \
         http-request use-service prometheus-exporter if {{ path /metrics }}\nlisten app\n bind :80\n \
         server s 10.0.0.1:80\n"
    ));
    assert!(c.refused.is_empty(), "{:?}", c.refused);
    let fe = &c.frontends[0];
    assert_eq!(fe.backend, None);
    assert!(!w.iter().any(|d| d.message.contains("has no backend")), "{w:?}");
    let page = fe.stats_page.as_ref().expect("a stats page");
    assert!(page.enabled);
    assert_eq!(page.uri, "/stats");
    assert_eq!(page.realm, "HAProxy Statistics");
    assert_eq!(page.refresh, Some(Duration::from_secs(10)));
    assert_eq!(
        page.auth,
        [
            ("admin".to_string(), "secret".to_string()),
            ("bob".to_string(), String::new())
        ]
    );
    assert_eq!(
        page.admin,
        Some(AdminCond::Src(vec![
            ("10.0.0.0".parse().unwrap(), 8),
            ("::1".parse().unwrap(), 128)
        ]))
    );
    assert!(page.hide_version && page.show_legends);
    assert_eq!(page.show_node.as_deref(), Some("lb1"));
    assert_eq!(page.show_desc.as_deref(), Some("the lb"));
    assert_eq!(page.prometheus_path.as_deref(), Some("/metrics"));
    assert_eq!(c.frontends[1].stats_page, None);

    // The exporter alone: no stats page, HAProxy's defaults kept for it.
    let (c, _) = ok(&format!(
        "{TIMEOUTS}frontend prom\n bind :8405\n mode http\n \
         http-request use-service prometheus-exporter if {{ path /metrics }}\n"
    ));
    let page = c.frontends[0].stats_page.as_ref().expect("an exporter");
    assert!(!page.enabled);
    assert_eq!(page.uri, "/haproxy?stats");
    assert_eq!(page.prometheus_path.as_deref(), Some("/metrics"));
}

#[test]
fn stats_in_defaults_are_inherited_until_a_proxy_has_its_own() {
    // As HAProxy: a proxy's own `stats` line starts from nothing, not from
    // what defaults said (checked with haproxy 2.6: /p without auth, /d gone).
    let (c, w) = ok(
        "defaults\n mode http\n timeout client 1s\n timeout connect 1s\n timeout server 1s\n \
         stats enable\n stats uri /d\n stats auth a:b\n stats realm Def\n\
         frontend p1\n bind :1\n stats uri /p\nfrontend p2\n bind :2\nfrontend p3\n bind :3\n mode tcp\n",
    );
    let page = |i: usize| c.frontends[i].stats_page.clone();
    let p1 = page(0).expect("p1 has its own page");
    assert_eq!((p1.uri.as_str(), p1.realm.as_str()), ("/p", "HAProxy Statistics"));
    assert!(p1.auth.is_empty());
    let p2 = page(1).expect("p2 inherits the page");
    assert_eq!((p2.uri.as_str(), p2.realm.as_str()), ("/d", "Def"));
    assert_eq!(p2.auth, [("a".to_string(), "b".to_string())]);
    // TCP mode: HAProxy warns and serves no page.
    assert_eq!(page(2), None);
    assert!(
        w.iter()
            .any(|d| d.message == "'stats' statement ignored for frontend 'p3' as it requires HTTP mode."),
        "{w:?}"
    );
}

#[test]
fn stats_pages_lbxdp_cant_serve_are_refused_with_their_line() {
    let (c, _) = ok(&format!(
        "{TIMEOUTS}frontend a\n bind :1\n mode http\n stats admin if is_admin\n\
         frontend b\n bind :2\n mode http\n stats scope a\n\
         frontend c\n bind :3\n mode http\n http-request use-service prometheus-exporter if {{ path_beg /m }}\n\
         frontend d\n bind :4\n mode http\n stats enable\n default_backend e\n\
         backend e\n mode http\n stats enable\n server s 10.0.0.1:80\n"
    ));
    let got: Vec<(usize, Unsupported)> = c.refused.iter().map(|r| (r.origin.line, r.what)).collect();
    assert_eq!(
        got,
        [
            (8, Unsupported::Condition),
            (12, Unsupported::StatsPage),
            (16, Unsupported::Condition),
            (20, Unsupported::StatsBesideTraffic),
            (24, Unsupported::StatsBesideTraffic),
        ]
    );
    for (line, want) in [
        ("stats admin", "'stats admin' requires either 'if' or 'unless'"),
        (
            "stats admin if { src foo }",
            "'foo' is not a valid IPv4 or IPv6 address",
        ),
        ("stats uri", "'uri' needs an URI prefix."),
        (
            "stats refresh 10x",
            "unexpected character 'x' in argument to stats refresh interval.",
        ),
        ("stats bogus", "unknown stats parameter 'bogus'"),
    ] {
        let a = alerts(&format!("{TIMEOUTS}frontend a\n bind :1\n mode http\n {line}\n"));
        assert!(
            a.iter().any(|d| d.origin.line == 8 && d.message.contains(want)),
            "{line}: {a:?}"
        );
    }
    let a = alerts("defaults\n stats admin if TRUE\nlisten l\n bind :1\n");
    assert!(
        a.iter()
            .any(|d| d.message.contains("'stats admin' not allowed in 'defaults' section"))
    );
}

#[test]
fn log_options_tag_and_hostname_reach_each_proxys_targets() {
    let text = "global\n log 127.0.0.1:514 len 200 format rfc5424 sample 1:2 local2 info\n log-tag lb\n \
                log-send-hostname edge1\n\
                defaults\n timeout client 1s\n timeout connect 1s\n timeout server 1s\n log global\n log-tag fromdef\n\
                frontend f\n bind :80\n log-tag web\n default_backend b\n\
                backend b\n log stdout format raw local0\n server s 198.18.0.1:80\n\
                backend c\n log-tag web2\n no log\n log global\n server s 198.18.0.1:80\n";
    let (c, diags) = ok(text);
    assert!(
        diags.iter().all(|d| !d.message.contains("log")),
        "log lines are applied, not warned about: {diags:#?}"
    );
    let fe = &c.frontends[0];
    assert_eq!(fe.logs.len(), 1);
    let t = &fe.logs[0];
    assert_eq!((t.max_len, t.format), (200, LogFormat::Rfc5424));
    assert_eq!(
        t.sample.as_ref().map(|s| (s.ranges.clone(), s.size)),
        Some((vec![(1, 1)], 2))
    );
    assert_eq!(t.tag.as_deref(), Some("web"));
    assert_eq!(t.hostname, Some(LogHostname::Named("edge1".into())));
    // The defaults' tag is inherited; a proxy's own replaces it.
    let b = c.backend("b").unwrap();
    assert_eq!(b.logs.len(), 2);
    assert!(b.logs.iter().all(|t| t.tag.as_deref() == Some("fromdef")));
    assert_eq!(b.logs[1].format, LogFormat::Raw);
    assert_eq!(c.backend("c").unwrap().logs[0].tag.as_deref(), Some("web2"));
    // Without any log-tag, the target has none and lbxdp's own name is sent.
    let (c, _) = ok(&format!(
        "global\n log 127.0.0.1 local2\n{TIMEOUTS} log global\nfrontend f\n bind :80\n default_backend b\nbackend b\n"
    ));
    assert_eq!(
        (
            c.frontends[0].logs[0].tag.clone(),
            c.frontends[0].logs[0].hostname.clone()
        ),
        (None, None)
    );
}

#[test]
fn log_errors_are_haproxys_with_their_line() {
    for (line, said) in [
        (" log 127.0.0.1 format json local0", "log: unknown log format 'json'"),
        (
            " log 127.0.0.1 len 79 local0",
            "log: invalid log length '79', must be between 80 and 65535",
        ),
        (" log 127.0.0.1 sample 1-2 local0", "log: Missing sample size"),
        (" log-tag", "'log-tag' expects a tag for use in syslog."),
        (" log-tag a b", "'log-tag' cannot handle unexpected argument 'b'"),
        (" log", "log: expects <address> and <facility>  as arguments"),
        (
            " log global",
            "log: 'global' is not supported for a global syslog server",
        ),
        (
            " log-send-hostname a\n log-send-hostname b",
            "'log-send-hostname' already specified. Continuing.",
        ),
    ] {
        let text = format!("global\n{line}\n{TIMEOUTS}frontend f\n bind :80\n default_backend b\nbackend b\n");
        let a = alerts(&text);
        assert_eq!(a.len(), 1, "{line}: {a:#?}");
        assert_eq!(a[0].message, said, "{line}");
        assert_eq!(a[0].origin.line, 1 + line.lines().count(), "{line}");
    }
    let a = alerts(&format!(
        "{TIMEOUTS}frontend f\n bind :80\n log-tag\n log\n default_backend b\nbackend b\n"
    ));
    assert_eq!(
        a.iter()
            .map(|d| (d.origin.line, d.message.as_str()))
            .collect::<Vec<_>>(),
        [
            (7, "'log-tag' expects a tag for use in syslog."),
            (8, "log: expects <address> and <facility> or global as arguments"),
        ]
    );
}

#[test]
fn master_worker_and_its_option() {
    const LISTEN: &str = "listen l\n    bind :80\n    server s 10.0.0.1:80\n";
    let (c, diags) = ok(&format!("global\n    master-worker\n{LISTEN}"));
    assert!(c.global.master_worker && !c.global.master_no_exit_on_failure);
    assert!(
        !diags.iter().any(|d| d.origin.line == 2),
        "applied, not warned about: {diags:?}"
    );
    let (c, _) = ok(&format!("global\n    master-worker no-exit-on-failure\n{LISTEN}"));
    assert!(c.global.master_worker && c.global.master_no_exit_on_failure);
    let a = alerts(&format!("global\n    master-worker exit\n{LISTEN}"));
    assert!(
        a.iter().any(|d| d
            .to_string()
            .contains("'master-worker' only supports 'no-exit-on-failure' option")),
        "{a:?}"
    );
}

#[test]
fn addr_with_a_port_moves_the_health_check_there() {
    let (c, _) = ok(&format!(
        "{TIMEOUTS}frontend f\n bind :80\n default_backend b\nbackend b\n server s 198.18.0.1 addr 198.18.0.2:8080 \
         check\n server t 198.18.0.3:80 addr :8081 check\n"
    ));
    let check = |i: usize| {
        c.backends[0].servers[i]
            .check
            .clone()
            .unwrap_or_else(|| panic!("no check"))
    };
    // A server that maps the client's port is checkable through addr's port.
    assert_eq!(
        (check(0).addr, check(0).addr_port),
        (Some("198.18.0.2".parse().unwrap()), Some(8080))
    );
    // No address: the server's own, on addr's port.
    assert_eq!((check(1).addr, check(1).addr_port), (None, Some(8081)));
    for (bad, want) in [
        ("198.18.0.2:+1", "port offset not permitted here in '198.18.0.2:+1'"),
        ("198.18.0.2:1-5", "port range not permitted here in '198.18.0.2:1-5'"),
        ("198.18.0.2:99999", "invalid port '99999'"),
    ] {
        let a = alerts(&format!(
            "{TIMEOUTS}frontend f\n bind :80\n default_backend b\nbackend b\n server s 198.18.0.1:80 addr {bad}\n"
        ));
        assert_eq!(a[0].origin.line, 9);
        assert_eq!(a[0].message, format!("'server b/s' : 'addr' : {want}."));
    }
}

#[test]
fn rules_name_sections_that_must_exist() {
    let body = "frontend f\n bind :80\n acl ok http_auth(users)\n http-request do-resolve(txn.ip,dns) src\n \
                http-request cache-use c\n default_backend b\nbackend b\n server s 198.18.0.1:80\n";
    let a = alerts(&format!("{TIMEOUTS}{body}"));
    let lines: Vec<usize> = a.iter().map(|d| d.origin.line).collect();
    assert_eq!(lines, [7, 8, 9], "{a:?}");
    assert_eq!(
        a[0].message,
        "unable to find userlist 'users' referenced in arg 1 of ACL keyword 'http_auth' in proxy 'f'."
    );
    // Declared after their use, as HAProxy allows.
    ok(&format!(
        "{TIMEOUTS}{body}userlist users\n user u insecure-password p\nresolvers dns\n nameserver n 127.0.0.1:53\n\
         cache c\n total-max-size 4\n"
    ));
}

/// HAProxy 2.6's `show acl` on this config (its own HTTP client's two
/// references, which come last, left out): a file's reference first and
/// shared, every expression's inline one (a `-f` line's is empty), an
/// anonymous one, a predefined ACL where it is used, a `-u` id kept and the
/// others numbered around it (checked against `haproxy` 2.6.12's `show acl`).
#[test]
fn pattern_references_are_numbered_as_haproxy_numbers_them() {
    let cfg = "defaults\n mode tcp\n timeout client 1s\n timeout server 1s\n timeout connect 1s\n\
               frontend fe\n bind 127.0.0.1:8080\n\
               \x20acl blocked src -f /b.lst\n\
               \x20acl inl src 1.2.3.4 5.6.7.0/24\n\
               \x20acl p dst_port -u 1 80\n\
               \x20tcp-request connection reject if blocked\n\
               \x20tcp-request connection reject if { src 9.9.9.9 } inl p\n\
               \x20default_backend be\n\
               frontend fe2\n bind 127.0.0.1:8081\n\
               \x20acl blocked2 src -f /b.lst\n\
               \x20tcp-request connection reject if blocked2 || LOCALHOST\n\
               \x20default_backend be\n\
               backend be\n server s 127.0.0.1:8099\n";
    let read = |p: &str| (p == "/b.lst").then(|| b"10.0.0.0/8\n# a comment\n192.0.2.1\n".to_vec());
    let (config, _) = super::parse_sources_reading(
        &[Source {
            name: "h.cfg",
            data: cfg.as_bytes(),
        }],
        &|_| None,
        &read,
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    let shown: Vec<String> = config.pattern_refs.iter().map(|r| r.list_line()).collect();
    let end = " curr_ver=0 next_ver=0 entry_cnt=";
    assert_eq!(
        shown,
        [
            format!(
                "0 (/b.lst) pattern loaded from file '/b.lst' used by acl at file 'h.cfg' line 8, by acl at file \
                 'h.cfg' line 16.{end}2\n"
            ),
            format!("1 () acl 'dst_port' file 'h.cfg' line 10.{end}1\n"),
            format!("2 () acl 'src' file 'h.cfg' line 8.{end}0\n"),
            format!("3 () acl 'src' file 'h.cfg' line 9.{end}2\n"),
            format!("4 () acl 'src' file 'h.cfg' line 12.{end}1\n"),
            format!("5 () acl 'src' file 'h.cfg' line 16.{end}0\n"),
            format!("6 () acl 'src' file 'h.cfg' line 17.{end}2\n"),
        ]
    );
    // Which expressions each feeds: the file both `blocked` lines.
    let feeds = |id: usize| -> Vec<(String, usize, usize)> {
        config.pattern_refs[id]
            .feeds
            .iter()
            .map(|f| (f.proxy.clone(), f.acl, f.expr))
            .collect()
    };
    assert_eq!(feeds(0), [("fe".into(), 0, 0), ("fe2".into(), 0, 0)]);
    assert_eq!(feeds(4), [("fe".into(), 3, 0)]);
    assert!(config.pattern_refs[0].addresses && !config.pattern_refs[1].addresses);
}

/// A named defaults section's ACLs are the proxies' too: `add acl` on their
/// references reaches every frontend that inherits them (ids as HAProxy's).
#[test]
fn inherited_acls_are_fed_by_the_defaults_references() {
    let cfg = "defaults base\n mode tcp\n timeout client 1s\n timeout server 1s\n timeout connect 1s\n\
               \x20acl blk src -f /b.lst\n tcp-request connection reject if blk\n\
               frontend fe from base\n bind 127.0.0.1:8080\n acl x src 3.3.3.3\n\
               \x20tcp-request connection reject if x\n default_backend be\n\
               frontend fe2 from base\n bind 127.0.0.1:8081\n default_backend be\n\
               defaults\n mode tcp\n timeout client 1s\n timeout server 1s\n timeout connect 1s\n\
               backend be\n server s 127.0.0.1:8099\n";
    let read = |p: &str| (p == "/b.lst").then(|| b"10.0.0.0/8\n".to_vec());
    let (config, _) = super::parse_sources_reading(
        &[Source {
            name: "d.cfg",
            data: cfg.as_bytes(),
        }],
        &|_| None,
        &read,
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    let heirs: Vec<(&str, usize, usize)> = config.pattern_refs[0]
        .feeds
        .iter()
        .filter(|f| !f.proxy.starts_with("defaults "))
        .map(|f| (f.proxy.as_str(), f.acl, f.expr))
        .collect();
    assert_eq!(heirs, [("fe", 0, 0), ("fe2", 0, 0)]);
    assert_eq!(config.pattern_refs[2].feeds.len(), 1);
    assert_eq!(config.pattern_refs[2].feeds[0].acl, 1, "after the inherited one");
}
