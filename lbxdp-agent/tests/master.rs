//! Master-worker mode as HAProxy 2.6's (`-W -S`), in the testbed with nginx
//! backends and the userspace proxy: the master starts a worker that
//! serves the VIP, its master CLI lists them (`show proc`) and reaches the
//! worker (`@1 show stat`), `reload` hands over to a new worker (under wrk
//! load, without a failed connection) and the old one leaves, a bad
//! configuration keeps the worker that serves, and SIGTERM to the master
//! ends every process and removes its sockets and pidfile.
mod common;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use common::{Agent, clients};
use lbxdp_testbed::{Layout, Testbed};

/// The workers this test saw, SIGKILLed if the test fails before their
/// master ended them (a SIGKILLed master leaves them running).
#[derive(Default)]
struct Workers(Vec<u32>);

impl Workers {
    fn saw(&mut self, pid: u32) {
        if !self.0.contains(&pid) {
            self.0.push(pid);
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if alive(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Running (not a zombie) and still an lbxdp-agent, not a reused pid.
fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let running = stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z'));
    let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("lbxdp-agent"));
    running && ours
}

/// `show proc`, split: the master's line, the current workers', the old ones'.
struct Procs {
    master: Vec<String>,
    workers: Vec<Vec<String>>,
    old: Vec<Vec<String>>,
}

fn show_proc(tb: &Testbed, sock: &Path) -> (Procs, String) {
    let text = clients::socat(tb, &tb.lb, sock, "show proc");
    let mut procs = Procs {
        master: Vec::new(),
        workers: Vec::new(),
        old: Vec::new(),
    };
    let mut section = "";
    for line in text.lines() {
        match line {
            "# workers" | "# old workers" | "# programs" => section = line,
            l if l.starts_with("#<PID>") || l.is_empty() => {}
            l => {
                let cols: Vec<String> = l.split_whitespace().map(String::from).collect();
                match section {
                    "" => procs.master = cols,
                    "# workers" => procs.workers.push(cols),
                    "# old workers" => procs.old.push(cols),
                    _ => {}
                }
            }
        }
    }
    (procs, text)
}

fn pid_of(cols: &[String]) -> u32 {
    cols.first().and_then(|p| p.parse().ok()).unwrap_or(0)
}

/// Waits (bounded) until `f` holds.
fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn master_worker_proxy() {
    master_worker("master_worker_proxy", &["--mode", "proxy"]);
}

#[test]
fn master_worker_xdp() {
    // The flags a user starts it with: the interface from the bind line.
    master_worker("master_worker_xdp", &["--stats-interval", "0"]);
}

fn master_worker(name: &str, mode_args: &[&str]) {
    let Some(tb) = common::testbed(name, Layout::OneArm, 2, true) else {
        return;
    };
    let good = common::web_config(&tb, "check inter 1000");
    let cfg = common::write_config(&tb, &good);
    let msock = tb.dir().join("master.sock");
    let pidfile = tb.dir().join("lbxdp.pid");
    let (msock_s, pidfile_s) = (
        msock.to_string_lossy().into_owned(),
        pidfile.to_string_lossy().into_owned(),
    );
    let mut workers = Workers::default();
    let cli = format!("{msock_s},mode,600");
    let mut args = vec!["-W", "-S", &cli, "-f", &cfg, "-p", &pidfile_s];
    args.extend_from_slice(mode_args);
    let mut master = Agent::start(&tb, &args);
    master.wait_for("Loading success.", Duration::from_secs(30));
    let url = format!("http://{}/", tb.lb.v4());
    let get = |when: &str| {
        let body = clients::curl(&tb, &tb.client, &url).unwrap_or_else(|e| panic!("a request {when}: {e:#}"));
        assert!(body.starts_with("web"), "{when}: {body}");
    };
    get("through the first worker");

    // The master's pid in the pidfile; the master and one worker in show proc.
    let written = std::fs::read_to_string(&pidfile).expect("the pidfile");
    assert_eq!(written.trim(), master.pid().to_string());
    let (procs, text) = show_proc(&tb, &msock);
    assert!(
        text.starts_with("#<PID>          <type>          <reloads>       <uptime>        <version>"),
        "{text}"
    );
    assert_eq!(pid_of(&procs.master), master.pid(), "{text}");
    assert_eq!(procs.master.get(1).map(String::as_str), Some("master"), "{text}");
    assert_eq!(procs.master[2..4].join(" "), "0 [failed:", "{text}");
    assert_eq!(procs.workers.len(), 1, "{text}");
    assert!(procs.old.is_empty(), "{text}");
    let first = pid_of(&procs.workers[0]);
    workers.saw(first);
    assert!(alive(first), "worker {first} runs");
    assert_eq!(procs.workers[0][1], "worker");

    // `@1 show stat` is the worker's: HAProxy's CSV with our servers.
    let stat = clients::socat(&tb, &tb.lb, &msock, "@1 show stat");
    assert!(stat.starts_with("# pxname,svname,"), "{stat}");
    for b in &tb.backends {
        assert!(stat.contains(&format!("pool,{},", b.name)), "{stat}");
    }
    // @!<pid> too, and a pid that is nobody's gets HAProxy's answer.
    let info = clients::socat(&tb, &tb.lb, &msock, &format!("@!{first} show info"));
    assert!(info.contains(&format!("Pid: {first}\n")), "{info}");
    assert_eq!(
        clients::socat(&tb, &tb.lb, &msock, "@!1 show info"),
        "Can't find the target PID matching the prefix '@!1'\n"
    );

    // Reload under load: a new worker, reload count 1, the old one leaves,
    // and no client sees an error.
    let (wrk, answer) = std::thread::scope(|scope| {
        let load = scope.spawn(|| common::wrk_close(&tb, &url, 8, 1));
        std::thread::sleep(Duration::from_secs(3));
        let answer = clients::socat(&tb, &tb.lb, &msock, "reload");
        master.wait_for("Loading success.", Duration::from_secs(30));
        (load.join().expect("wrk thread"), answer)
    });
    // HAProxy 2.6's master answers a reload with nothing (it re-executes).
    assert_eq!(answer, "");
    eprintln!("{}", wrk.text);
    eprintln!(
        "across a master reload ({name}): {:.0} requests/s, socket errors {} (connect {}, read {}, write {}, timeout {})",
        wrk.rate,
        wrk.socket_errors(),
        wrk.connect,
        wrk.read,
        wrk.write,
        wrk.timeout
    );
    assert_eq!(
        wrk.socket_errors(),
        0,
        "connections failed across the reload:\n{}",
        wrk.text
    );
    assert!(!wrk.text.contains("Non-2xx"), "{}", wrk.text);
    let mut second = 0;
    wait_until("the old worker leaves", Duration::from_secs(15), || {
        let (procs, _) = show_proc(&tb, &msock);
        second = procs.workers.first().map_or(0, |w| pid_of(w));
        procs.old.is_empty() && procs.workers.len() == 1 && !alive(first)
    });
    workers.saw(second);
    assert_ne!(second, first, "a new worker serves");
    master.wait_for(
        &format!("Former worker ({first}) exited with code 0 (Exit)"),
        Duration::from_secs(5),
    );
    let (procs, text) = show_proc(&tb, &msock);
    assert_eq!(procs.master[2..5].join(" "), "1 [failed: 0]", "{text}");
    assert_eq!(procs.workers[0][2], "0", "the new worker has seen no reload: {text}");
    get("through the new worker");

    // A bad configuration: the reload fails, the worker stays and serves.
    std::fs::write(&cfg, format!("{good}    bogus_keyword x\n")).expect("a bad config");
    master.signal(nix::sys::signal::Signal::SIGUSR2);
    master.wait_for("Loading failure!", Duration::from_secs(10));
    let (procs, text) = show_proc(&tb, &msock);
    assert_eq!(procs.master[2..5].join(" "), "2 [failed: 1]", "{text}");
    assert_eq!(procs.workers.len(), 1, "{text}");
    assert_eq!(pid_of(&procs.workers[0]), second, "{text}");
    assert_eq!(procs.workers[0][2], "1", "{text}");
    assert!(alive(second));
    get("after a failed reload");
    assert!(
        master.log().contains("bogus_keyword"),
        "the error is logged:\n{}",
        master.log()
    );

    // SIGTERM to the master: every process ends, sockets and pidfile go.
    let private = Path::new("/run/lbxdp").join(format!("master-{}", master.pid()));
    assert!(private.exists(), "the master's directory {}", private.display());
    let worker_sock = std::fs::read_dir(&private)
        .expect("the master's directory")
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().ends_with(".sock"));
    assert!(worker_sock, "the worker's runtime socket is in the master's directory");
    master.stop();
    assert!(!alive(second), "the worker outlived its master");
    assert!(!msock.exists(), "the master CLI socket stays");
    assert!(!pidfile.exists(), "the pidfile stays");
    assert!(!private.exists(), "the master's directory stays");
    drop(workers);
}

#[test]
fn worker_failure_ends_the_master() {
    let Some(tb) = common::testbed("worker_failure_ends_the_master", Layout::OneArm, 1, true) else {
        return;
    };
    let cfg = common::write_config(&tb, &common::web_config(&tb, ""));
    let msock = tb.dir().join("master.sock");
    let mut workers = Workers::default();
    let mut master = Agent::start(
        &tb,
        &["-W", "-S", &msock.to_string_lossy(), "-f", &cfg, "--mode", "proxy"],
    );
    master.wait_for("Loading success.", Duration::from_secs(30));
    let (procs, text) = show_proc(&tb, &msock);
    let worker = procs.workers.first().map_or(0, |w| pid_of(w));
    assert!(worker > 0, "{text}");
    workers.saw(worker);
    // A crash (SIGKILL) of the only worker: the master leaves with its code.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL to the worker");
    master.wait_for(
        &format!("Current worker ({worker}) exited with code 137 (Killed)"),
        Duration::from_secs(10),
    );
    master.wait_for("All workers exited. Exiting... (137)", Duration::from_secs(10));
    let status = master.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(137), "{}", master.log());
    assert!(!msock.exists(), "the master CLI socket stays");
}
