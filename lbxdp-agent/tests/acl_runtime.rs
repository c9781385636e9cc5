//! The runtime API's ACL commands (`show acl`, `add acl`, `del acl`,
//! `clear acl`) on a blocklist read with `-f` and on inline address lists,
//! served by lbxdp in XDP mode and in proxy mode, and by real HAProxy 2.6
//! with the same config as the reference: the list's layout and numbering,
//! a client refused as soon as its address is added and let in again once
//! it is deleted, without a reload and without cutting a connection
//! already open, HAProxy's error texts, and (lbxdp) a reload that reads the
//! file again and forgets what was added at run time. Real nginx backends,
//! curl as the client. Needs root; skips loudly without it.
mod common;

use std::{net::SocketAddr, path::Path, time::Duration};

use common::runtime::{Bed, KeepAlive, Target, wait_until};
use lbxdp_testbed::{Host, Testbed};

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

each_target!(acl_entries_change_without_reload);

/// Who the list refuses at start: not the test's client.
const LISTED: &str = "192.0.2.0/24";

fn list_path(tb: &Testbed) -> std::path::PathBuf {
    tb.dir().join("block.lst")
}

fn config(tb: &Testbed, admin: &Path, _user: &Path, servers: &[(String, Host)]) -> String {
    let list = list_path(tb);
    std::fs::write(&list, format!("# refused clients\n{LISTED}\n")).expect("block.lst");
    let [(_, main), ..] = servers else { panic!("a server") };
    let (lb, lb6) = (tb.lb.v4(), tb.lb.v6());
    format!(
        "global\n    stats socket {admin} mode 600 level admin\n\n\
         defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend web\n    bind {lb}:80\n\
         \x20   acl blocked src -f {list}\n\
         \x20   tcp-request connection reject if blocked\n\
         \x20   default_backend main\n\n\
         frontend web6\n    bind [{lb6}]:80\n\
         \x20   acl six src 192.0.2.7 2001:db8::/32\n\
         \x20   tcp-request connection reject if six || {{ src 198.51.100.0/24 }}\n\
         \x20   default_backend main6\n\n\
         backend main\n    server s1 {}:80\n\n\
         backend main6\n    server s1 [{}]:80\n",
        main.v4(),
        main.v6(),
        admin = admin.display(),
        list = list.display(),
    )
}

/// curl from the client: the body, or curl's exit code.
fn curl(bed: &Bed, url: &str) -> Result<String, i32> {
    let out = bed
        .tb
        .command(&bed.tb.client, "curl")
        .args(["-sS", "--max-time", "2", url])
        .output_timeout(Duration::from_secs(10))
        .expect("curl");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(out.status.code().unwrap_or(-1))
    }
}

/// The line of the config that holds `needle`, counted from 1.
fn line_of(cfg: &str, needle: &str) -> usize {
    cfg.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no {needle:?} in the config"))
}

/// `show acl <acl>`: the patterns, each after an entry reference `0x...`.
fn entries(bed: &Bed, acl: &str) -> Vec<String> {
    let out = bed.admin(&format!("show acl {acl}"));
    assert!(out.ends_with("\n\n") || out == "\n", "{out:?}");
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (id, pattern) = l.split_once(' ').unwrap_or_else(|| panic!("entry line {l:?}"));
            assert!(id.starts_with("0x"), "{l:?}");
            pattern.to_string()
        })
        .collect()
}

fn acl_entries_change_without_reload(target: Target) {
    let _one = serial();
    let Some(mut bed) = Bed::start_with("acl_entries_change_without_reload", target, config) else {
        return;
    };
    let t = target.name();
    let cfg_path = bed.tb.dir().join("haproxy.cfg");
    let cfg = std::fs::read_to_string(&cfg_path).expect("the config");
    let (cfg_name, list) = (cfg_path.display().to_string(), list_path(&bed.tb).display().to_string());
    let (blocked, six, anon) = (
        line_of(&cfg, "acl blocked"),
        line_of(&cfg, "acl six"),
        line_of(&cfg, "reject if six"),
    );
    // HAProxy's numbering: the file's reference, then each expression's
    // inline one (the `-f` line's is empty), in the order they are declared.
    let want = [
        "# id (file) description".to_string(),
        format!(
            "0 ({list}) pattern loaded from file '{list}' used by acl at file '{cfg_name}' line {blocked}. \
             curr_ver=0 next_ver=0 entry_cnt=1"
        ),
        format!("1 () acl 'src' file '{cfg_name}' line {blocked}. curr_ver=0 next_ver=0 entry_cnt=0"),
        format!("2 () acl 'src' file '{cfg_name}' line {six}. curr_ver=0 next_ver=0 entry_cnt=2"),
        format!("3 () acl 'src' file '{cfg_name}' line {anon}. curr_ver=0 next_ver=0 entry_cnt=1"),
    ];
    let shown = bed.admin("show acl");
    // HAProxy adds its internal HTTP client's two references last; lbxdp has no such client.
    let lines: Vec<&str> = shown
        .lines()
        .filter(|l| !l.is_empty() && !l.contains("file 'httpclient'"))
        .collect();
    assert_eq!(lines, want, "{t}: show acl:\n{shown}");
    assert!(shown.ends_with("\n\n"), "{t}: {shown:?}");
    assert_eq!(entries(&bed, "#0"), [LISTED], "{t}");
    assert_eq!(entries(&bed, &list), [LISTED], "{t}");
    assert_eq!(entries(&bed, "#2"), ["192.0.2.7", "2001:db8::/32"], "{t}");

    let client = bed.tb.client.v4().to_string();
    let v4 = format!("http://{}/", bed.tb.lb.v4());
    assert_eq!(curl(&bed, &v4), Ok("web1".into()), "{t}: not listed yet");
    let mut open = KeepAlive::connect(&bed.tb, SocketAddr::new(bed.tb.lb.v4().into(), 80)).expect("keep-alive");
    assert_eq!(open.get().ok().as_deref(), Some("web1"), "{t}");

    // Added by file name: refused at once, no reload.
    assert_eq!(bed.admin(&format!("add acl {list} {client}")), "\n", "{t}");
    assert_eq!(entries(&bed, "#0"), [LISTED, client.as_str()], "{t}");
    assert!(curl(&bed, &v4).is_err(), "{t}: a client just listed got in");
    // The connection it had open goes on.
    assert_eq!(open.get().ok().as_deref(), Some("web1"), "{t}: an open flow was cut");

    // HAProxy's error texts, word for word.
    let unknown = "Unknown ACL identifier. Please use #<id> or <file>.\n\n";
    for (line, answer) in [
        ("add acl #0 bad", "'bad' is not a valid IPv4 or IPv6 address.\n\n"),
        (
            "add acl #0 1.2.3.4/33",
            "'1.2.3.4/33' is not a valid IPv4 or IPv6 address.\n\n",
        ),
        (
            "add acl #0",
            "'add acl' expects two parameters: ACL identifier and pattern.\n\n",
        ),
        ("add acl #99 1.2.3.4", unknown),
        ("show acl #99", unknown),
        ("show acl /nonexistent.lst", unknown),
        ("clear acl #x", unknown),
        ("clear acl", "Missing ACL identifier.\n\n"),
        (
            "del acl #0",
            "This command expects two parameters: ACL identifier and key.\n\n",
        ),
        (
            "del acl #99 1.2.3.4",
            "Unknown map identifier. Please use #<id> or <file>.\n\n",
        ),
        ("del acl #0 203.0.113.9", "Key not found.\n\n"),
    ] {
        assert_eq!(bed.admin(line), answer, "{t}: {line}");
    }

    // Deleted: let in again.
    assert_eq!(bed.admin(&format!("del acl #0 {client}")), "\n", "{t}");
    assert_eq!(entries(&bed, "#0"), [LISTED], "{t}");
    assert_eq!(curl(&bed, &v4), Ok("web1".into()), "{t}: a client taken off the list");

    // Cleared: empty, and the client that was in it gets in.
    assert_eq!(bed.admin(&format!("add acl #0 {client}")), "\n", "{t}");
    assert!(curl(&bed, &v4).is_err(), "{t}: listed again");
    assert_eq!(bed.admin("clear acl #0"), "\n", "{t}");
    assert_eq!(bed.admin("show acl #0"), "\n", "{t}: a cleared list");
    assert_eq!(curl(&bed, &v4), Ok("web1".into()), "{t}: after clear acl");

    // An inline list, over IPv6, and the anonymous one by its number.
    let v6 = format!("http://[{}]/", bed.tb.lb.v6());
    let client6 = bed.tb.client.v6().to_string();
    assert_eq!(curl(&bed, &v6), Ok("web1".into()), "{t}: IPv6, not listed");
    assert_eq!(bed.admin(&format!("add acl #3 {client6}")), "\n", "{t}");
    assert!(curl(&bed, &v6).is_err(), "{t}: IPv6 client added to the anonymous ACL");
    assert_eq!(bed.admin(&format!("del acl #3 {client6}")), "\n", "{t}");
    assert_eq!(bed.admin(&format!("add acl #2 {client6}/128")), "\n", "{t}");
    assert!(curl(&bed, &v6).is_err(), "{t}: IPv6 client added to a named inline ACL");
    assert_eq!(bed.admin(&format!("del acl #2 {client6}/128")), "\n", "{t}");
    assert_eq!(curl(&bed, &v6), Ok("web1".into()), "{t}: IPv6 client deleted");

    // A reload reads the file again and forgets what was added at run time
    // (HAProxy runs in the foreground here, without a master to reload it).
    if target != Target::Haproxy {
        assert_eq!(bed.admin("add acl #2 203.0.113.5"), "\n", "{t}");
        std::fs::write(list_path(&bed.tb), format!("{LISTED}\n{client}\n")).expect("block.lst");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(bed.lb.pid()).expect("a pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP to the agent");
        wait_until("the agent to log the reload", Duration::from_secs(10), || {
            bed.lb.log().contains("SIGHUP: configuration reloaded")
        });
        assert_eq!(
            entries(&bed, "#0"),
            [LISTED, client.as_str()],
            "{t}: the file read again"
        );
        assert_eq!(
            entries(&bed, "#2"),
            ["192.0.2.7", "2001:db8::/32"],
            "{t}: runtime entries forgotten"
        );
        assert!(curl(&bed, &v4).is_err(), "{t}: the reloaded file lists the client");
        // The reloaded rules follow the runtime API as the first ones did.
        assert_eq!(bed.admin(&format!("del acl {list} {client}")), "\n", "{t}");
        assert_eq!(curl(&bed, &v4), Ok("web1".into()), "{t}: deleted after the reload");
    }
}
