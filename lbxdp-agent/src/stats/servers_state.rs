//! `show servers state [<backend>]` and `show backend`, as HAProxy 2.6
//! prints them (the format `load-server-state-from-file` reads back).
use std::{collections::BTreeMap, fmt::Write, net::IpAddr, time::Instant};

use crate::{
    config::{Backend, Config, PortSpec},
    health::{ServerId, ServerState, Status},
};

const HEADER: &str = "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight \
                      srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health \
                      srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord \
                      srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n";

/// HAProxy's `enum healthcheck_status` values, by short name.
fn check_status_code(name: &str) -> u32 {
    match name {
        "INI" => 1,
        "START" => 2,
        "HANA" => 4,
        "SOCKERR" => 5,
        "L4OK" => 6,
        "L4TOUT" => 7,
        "L4CON" => 8,
        "L6OK" => 9,
        "L6TOUT" => 10,
        "L6RSP" => 11,
        "L7TOUT" => 12,
        "L7RSP" => 13,
        "L7OK" => 15,
        "L7OKC" => 16,
        "L7STS" => 17,
        "PROCERR" => 18,
        "PROCTOUT" => 19,
        "PROCOK" => 20,
        _ => 0,
    }
}

/// HAProxy's `enum chk_result`: unknown 0, failed 2, passed 3, condpass 4.
fn check_result(name: &str) -> u32 {
    match name {
        "L4OK" | "L6OK" | "L7OK" | "PROCOK" => 3,
        "L7OKC" => 4,
        "INI" | "START" | "" => 0,
        _ => 2,
    }
}

fn line(out: &mut String, b: &Backend, health: &BTreeMap<ServerId, ServerState>, now: Instant) {
    for s in &b.servers {
        let Some(st) = health.get(&ServerId::new(&b.name, &s.name)) else {
            continue;
        };
        // SRV_ST_STOPPED 0, SRV_ST_RUNNING 2, SRV_ST_STOPPING 3: maintenance stops a server.
        let op_state = match st.status {
            Status::Nolb => 3,
            Status::Up | Status::GoingDown { .. } | Status::Drain => 2,
            Status::Down | Status::GoingUp { .. } | Status::Maint => 0,
        };
        // SRV_ADMF_FMAINT 0x01 (forced), CMAINT 0x04 (config), FDRAIN 0x08.
        let mut admin = 0;
        if st.status == Status::Maint {
            admin |= if s.disabled { 0x05 } else { 0x01 };
        }
        if st.drain {
            admin |= 0x08;
        }
        let check = st.last_check.as_ref().map_or("INI", |l| l.status);
        let (status, result) = if st.checked {
            (check_status_code(check), check_result(check))
        } else {
            (1, 0)
        };
        // An unchecked server's counter sits at `rise` (2) while it is up.
        let health_value = match (st.status, st.health) {
            (Status::Maint, _) => 0,
            (_, Some(h)) => h.health,
            _ if op_state == 2 => 2,
            _ => 0,
        };
        // CHK_ST_CONFIGURED 0x02, ENABLED 0x04, PAUSED 0x08 (maintenance).
        let mut check_state = 0;
        if st.checked {
            check_state |= 0x02;
            if st.checks_enabled {
                check_state |= 0x04;
            }
        }
        if st.status == Status::Maint && (st.checked || s.disabled) {
            check_state |= 0x08;
        }
        let port = match s.port {
            PortSpec::Fixed(p) => i64::from(p),
            PortSpec::Offset(o) => i64::from(o),
        };
        let (check_port, check_addr) = s.check.as_ref().map_or((0, None), |c| (c.port.unwrap_or(0), c.addr));
        let check_addr = check_addr.map_or_else(|| "-".to_string(), |a: IpAddr| a.to_string());
        let since = now.saturating_duration_since(st.since).as_secs();
        let _ = writeln!(
            out,
            "{} {} {} {} {} {op_state} {admin} {} {} {since} {status} {result} {health_value} {check_state} 0 0 0 - \
             {port} - 0 {check_port} {check_addr} - 0",
            b.id, b.name, s.id, s.name, s.addr, st.weight, st.initial_weight,
        );
    }
}

/// `show servers state [<backend>]`; an unknown backend gets HAProxy's
/// "Can't find backend.". Like every answer here, it ends with the blank
/// line HAProxy's CLI ends each answer with.
pub fn show_servers_state(
    config: &Config,
    health: &BTreeMap<ServerId, ServerState>,
    backend: Option<&str>,
    now: Instant,
) -> String {
    let backends: Vec<&Backend> = match backend {
        Some(name) => match config.backend(name) {
            Some(b) => vec![b],
            None => return "Can't find backend.\n\n".into(),
        },
        None => config.backends.iter().collect(),
    };
    let mut out = String::from("1\n");
    out.push_str(HEADER);
    for b in backends {
        line(&mut out, b, health, now);
    }
    out.push('\n');
    out
}

/// `show backend`: `# name`, then each backend on its line.
pub fn show_backend(config: &Config) -> String {
    let mut out = String::from("# name\n");
    for b in &config.backends {
        out.push_str(&b.name);
        out.push('\n');
    }
    out.push('\n');
    out
}
