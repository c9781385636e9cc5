//! Named network namespaces, made the way `ip netns add` makes them (a bind
//! mount of the namespace under /run/netns), but from a short-lived thread so
//! the test process itself never leaves its own namespace.
use std::{fs::File, os::unix::fs::MetadataExt as _, path::Path, sync::Arc};

use anyhow::{Context as _, bail};
use nix::{
    mount::{MntFlags, MsFlags, mount, umount2},
    sched::{CloneFlags, setns, unshare},
};

/// Where `ip netns` keeps its names; using it lets `ip netns list` and
/// `ip netns exec` see the testbed when someone debugs it by hand.
pub const NETNS_DIR: &str = "/run/netns";

/// Every namespace that a testbed makes starts with this; the sweep touches nothing else.
pub const PREFIX: &str = "lbxt-";

pub struct Netns {
    name: String,
    file: Arc<File>,
}

impl Netns {
    pub fn create(name: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(NETNS_DIR).with_context(|| format!("creating {NETNS_DIR}"))?;
        let path = Path::new(NETNS_DIR).join(name);
        if path.exists() {
            bail!("network namespace {name} already exists");
        }
        File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let target = path.clone();
        // unshare() moves only the calling thread, and the thread ends right
        // after: the bind mount is what keeps the namespace alive.
        let made = std::thread::spawn(move || -> anyhow::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .with_context(|| format!("bind-mounting the new namespace on {}", target.display()))?;
            Ok(())
        })
        .join();
        let made = match made {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!("the thread creating {name} panicked")),
        };
        if let Err(e) = made {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            name: name.to_string(),
            file: Arc::new(file),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn shared_file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    /// Runs `f` on a thread that has entered this namespace. Sockets, netlink
    /// connections, /proc/sys/net files and child processes made there all
    /// belong to the namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<T> {
        run_in(&self.file, &self.name, f)
    }

    /// Writes a sysctl as seen from inside this namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.run(|| std::fs::write(&path, value).with_context(|| format!("sysctl {key}={value} in {}", self.name)))
    }

    /// The namespace's identity, as /proc/PID/ns/net links show it.
    pub fn inode(&self) -> anyhow::Result<u64> {
        Ok(self.file.metadata()?.ino())
    }
}

/// Runs `f` on a scoped thread that entered the namespace open as `ns`
/// (`name` is for messages); the caller's own thread never moves.
pub fn run_in<T: Send>(ns: &File, name: &str, f: impl FnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(ns, CloneFlags::CLONE_NEWNET).with_context(|| format!("entering {name}"))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("a thread working in {name} panicked")))
    })
}

/// Removes a namespace by name; the kernel frees it (and the veths in it)
/// once no process is left inside.
pub fn remove(name: &str) -> anyhow::Result<()> {
    let path = Path::new(NETNS_DIR).join(name);
    // A half-made namespace may have its file but no mount: removing the file is what counts.
    let unmounted = umount2(&path, MntFlags::MNT_DETACH);
    std::fs::remove_file(&path).with_context(|| format!("removing {} (unmount: {unmounted:?})", path.display()))?;
    Ok(())
}

/// Names under /run/netns that start with `prefix`.
pub fn list(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}
