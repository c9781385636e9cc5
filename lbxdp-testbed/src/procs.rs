//! Processes: finding the ones inside a namespace, and ending a child politely.
use std::{
    process::{Child, ExitStatus},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// Pids whose network namespace is the one with inode `ns_inode`. Only a
/// testbed's own namespaces are ever asked about, so every process found was
/// started by a testbed (this run's, or a crashed run's).
pub fn in_netns(ns_inode: u64) -> Vec<i32> {
    let want = format!("net:[{ns_inode}]");
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc_dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|l| l.to_string_lossy() == want))
        .collect()
}

/// SIGKILLs every process in the namespace and waits (bounded) until none is left.
pub fn kill_all_in(ns_inode: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = in_netns(ns_inode);
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, then SIGKILL if the child is still there after `grace`.
/// Returns the exit status, and whether it needed the SIGKILL.
pub fn terminate(child: &mut Child, grace: Duration) -> std::io::Result<(ExitStatus, bool)> {
    if let Some(status) = child.try_wait()? {
        return Ok((status, false));
    }
    let pid = Pid::from_raw(i32::try_from(child.id()).map_err(std::io::Error::other)?);
    kill(pid, Signal::SIGTERM).map_err(std::io::Error::from)?;
    let deadline = Instant::now() + grace;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((status, false));
        }
        if Instant::now() > deadline {
            child.kill()?;
            return Ok((child.wait()?, true));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
