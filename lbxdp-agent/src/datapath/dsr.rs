//! What `--nat dsr` asks of a config, checked before anything is written:
//! the node hands each frame to the server by its MAC address, unchanged,
//! so a server must be on one of the node's segments and listen on the very
//! port the client connected to; and `source` (full NAT's address) has
//! nothing to apply to. Each refusal names the server line.
use std::net::IpAddr;

use anyhow::bail;

use super::{
    net::{IfAddr, in_subnet},
    plan::Plan,
};
use crate::config::{Config, Server};

pub fn check(config: &Config, plan: &Plan, local: &[IfAddr], ifaces: &[String]) -> anyhow::Result<()> {
    for fe in &plan.frontends {
        let mut reached = vec![fe.backend as usize];
        if let Some(rules) = &fe.rules {
            reached.extend(rules.rules.iter().filter_map(|r| r.backend));
        }
        for be in reached.iter().filter_map(|&i| plan.backends.get(i)) {
            for s in &be.servers {
                let line = origin(config, &be.name, &s.name);
                if let Some(src) = s.source {
                    bail!(
                        "{line}: server {}/{}: 'source {src}' with --nat dsr: the server sees the client's own \
                         address and answers it directly, so there is no source address to set",
                        be.name,
                        s.name
                    );
                }
                if !local.iter().any(|a| in_subnet(s.addr, a)) {
                    bail!(
                        "{line}: server {}/{} ({}) is not on a segment of {}: with --nat dsr the node hands the \
                         frame to the server's MAC address, so servers must share an L2 segment with it",
                        be.name,
                        s.name,
                        s.addr,
                        ifaces.join(", ")
                    );
                }
                if let Some(&(vip, port)) = fe.vips.iter().find(|(_, port)| *port != s.port) {
                    bail!(
                        "{line}: server {}/{} listens on port {}, but frontend {} takes {}: with --nat dsr the \
                         packet reaches the server as the client sent it, so the ports must be the same",
                        be.name,
                        s.name,
                        s.port,
                        fe.name,
                        sockaddr(vip, port)
                    );
                }
            }
        }
    }
    Ok(())
}

fn origin(config: &Config, backend: &str, server: &str) -> String {
    config
        .backends
        .iter()
        .find(|b| b.name == backend)
        .and_then(|b| b.servers.iter().find(|s| s.name == server))
        .map_or_else(|| format!("backend {backend}"), |s: &Server| s.origin.to_string())
}

fn sockaddr(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    fn local() -> Vec<IfAddr> {
        vec![IfAddr {
            addr: "198.18.0.2".parse().expect("addr"),
            prefix: 24,
        }]
    }

    fn run(text: &str) -> anyhow::Result<()> {
        let config = match parse_str("t.cfg", text) {
            Ok((c, _)) => c,
            Err(d) => panic!("config rejected: {d:?}"),
        };
        let plan = super::super::plan::plan(&config, &[]).expect("plan");
        check(&config, &plan, &local(), &["eth0".to_string()])
    }

    const BASE: &str =
        "frontend fe\n  mode tcp\n  bind 198.18.10.1:80\n  default_backend be\n\nbackend be\n  mode tcp\n";

    #[test]
    fn servers_on_the_segment_and_the_frontends_port_pass() {
        run(&format!(
            "{BASE}  server a 198.18.0.101:80 check\n  server b 198.18.0.102\n"
        ))
        .expect("valid for dsr");
    }

    #[test]
    fn each_refusal_names_the_server_line() {
        let cases = [
            ("  server a 198.18.0.101:8080\n", "t.cfg:8", "listens on port 8080"),
            ("  server a 198.18.3.101:80\n", "t.cfg:8", "is not on a segment of eth0"),
            (
                "  server a 198.18.0.101:80 source 198.18.0.2\n",
                "t.cfg:8",
                "'source 198.18.0.2'",
            ),
        ];
        for (server, line, why) in cases {
            let err = run(&format!("{BASE}{server}")).expect_err(server).to_string();
            assert!(err.starts_with(line) && err.contains(why), "{server}: {err}");
        }
    }

    #[test]
    fn a_use_backend_target_is_checked_too() {
        let text = format!(
            "{}  use_backend other if {{ src 198.18.1.0/24 }}\n{}  server a 198.18.0.101:80\n\nbackend other\n  mode \
             tcp\n  server z 198.18.0.109:81\n",
            BASE.split("\nbackend be").next().expect("frontend"),
            "\nbackend be\n  mode tcp\n"
        );
        let err = run(&text).expect_err("port 81").to_string();
        assert!(err.contains("server other/z listens on port 81"), "{err}");
    }
}
