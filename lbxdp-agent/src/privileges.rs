//! Least privilege: the global section's `chroot`, `uid`/`user` and
//! `gid`/`group` are applied once the datapath is loaded, attached and
//! pinned (or the proxy's listeners bound), as HAProxy applies them once its
//! listeners are bound. The agent then runs as that
//! user with only the capabilities it still uses:
//! - `CAP_NET_ADMIN`: netlink (VIP addresses and neighbour entries on
//!   reloads and at exit);
//! - `CAP_BPF`: the map updates that health changes and reloads make;
//! - `CAP_NET_BIND_SERVICE`: listeners below port 1024 opened by a reload.
//!
//! Everything else it must touch later is arranged beforehand: the sysctls
//! it restores at exit are held open (see `net.rs` and `ports.rs`), the
//! directories of its pins and handover are handed to that user, and these
//! and the configuration's directories stay reachable from inside the
//! chroot (see `outside.rs`).
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Group, Uid, User};
use tracing::info;

use crate::config::Global;

/// The capabilities the running agent keeps (see the module's comment).
pub const KEPT: [Capability; 3] = [
    Capability::CAP_NET_ADMIN,
    Capability::CAP_BPF,
    Capability::CAP_NET_BIND_SERVICE,
];

/// Who the agent becomes: None when the config names nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub uid: Uid,
    pub gid: Gid,
    pub chroot: Option<PathBuf>,
}

/// Resolves `uid`/`user` and `gid`/`group` (a user's own group when only
/// the user is named, as HAProxy does not: it keeps root's group, which is
/// worse, so lbxdp takes the user's primary group).
pub fn target(g: &Global) -> anyhow::Result<Option<Target>> {
    let user = match (g.uid, &g.user) {
        (Some(uid), _) => Some((Uid::from_raw(uid), None)),
        (None, Some(name)) => {
            let u = User::from_name(name)
                .with_context(|| format!("looking up user {name}"))?
                .with_context(|| format!("user {name} (global 'user') doesn't exist"))?;
            Some((u.uid, Some(u.gid)))
        }
        (None, None) => None,
    };
    let group = match (g.gid, &g.group) {
        (Some(gid), _) => Some(Gid::from_raw(gid)),
        (None, Some(name)) => Some(
            Group::from_name(name)
                .with_context(|| format!("looking up group {name}"))?
                .with_context(|| format!("group {name} (global 'group') doesn't exist"))?
                .gid,
        ),
        (None, None) => None,
    };
    let chroot = g.chroot.as_ref().map(PathBuf::from);
    if let Some(dir) = &chroot
        && !dir.is_dir()
    {
        bail!("chroot {}: no such directory (global 'chroot')", dir.display());
    }
    Ok(match (user, group) {
        (None, None) if chroot.is_none() => None,
        (None, None) => Some(Target {
            uid: Uid::current(),
            gid: Gid::current(),
            chroot,
        }),
        (Some((uid, primary)), group) => Some(Target {
            uid,
            gid: group.or(primary).unwrap_or_else(Gid::current),
            chroot,
        }),
        (None, Some(gid)) => Some(Target {
            uid: Uid::current(),
            gid,
            chroot,
        }),
    })
}

/// Hands `path` (a directory the agent keeps writing or removing in) to `t`.
pub fn hand_over(path: &Path, t: &Target) -> anyhow::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(path).with_context(|| format!("{}", path.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            hand_over(&entry.path(), t)?;
        } else {
            nix::unistd::chown(&entry.path(), Some(t.uid), Some(t.gid))
                .with_context(|| format!("chown {}", entry.path().display()))?;
        }
    }
    nix::unistd::chown(path, Some(t.uid), Some(t.gid)).with_context(|| format!("chown {}", path.display()))
}

/// Becomes `t`, keeping `KEPT` and dropping every other capability; in
/// `t.chroot`, with `reachable` (directories) still reachable.
pub fn drop_to(t: &Target, reachable: &[PathBuf]) -> anyhow::Result<()> {
    let keep: CapsHashSet = KEPT.into_iter().collect();
    if let Some(dir) = &t.chroot {
        // aya sizes per-CPU map reads from /sys/devices/system/cpu/possible,
        // read once per thread: read it on this thread (the one that reads
        // the counters) while it is still in sight.
        aya::util::nr_cpus().map_err(|(path, e)| anyhow::anyhow!("{path}: {e}"))?;
        crate::outside::keep(reachable).context("opening the directories used after the chroot")?;
        nix::unistd::chroot(dir).with_context(|| format!("chroot {}", dir.display()))?;
        nix::unistd::chdir("/").context("chdir / in the chroot")?;
    }
    // Capabilities survive the uid change only with KEEPCAPS set.
    nix::sys::prctl::set_keepcaps(true).context("prctl(PR_SET_KEEPCAPS)")?;
    nix::unistd::setgroups(&[t.gid]).context("setgroups")?;
    nix::unistd::setresgid(t.gid, t.gid, t.gid).context("setresgid")?;
    nix::unistd::setresuid(t.uid, t.uid, t.uid).context("setresuid")?;
    caps::set(None, CapSet::Permitted, &keep).context("setting the permitted capabilities")?;
    caps::set(None, CapSet::Effective, &keep).context("setting the effective capabilities")?;
    caps::clear(None, CapSet::Inheritable).context("clearing the inheritable capabilities")?;
    nix::sys::prctl::set_keepcaps(false).context("prctl(PR_SET_KEEPCAPS)")?;
    let now = caps::read(None, CapSet::Effective).context("reading the capabilities back")?;
    if now != keep || !Uid::current().eq(&t.uid) {
        bail!(
            "dropping privileges did not take: uid {}, capabilities {now:?}",
            Uid::current()
        );
    }
    let mut names: Vec<String> = keep.iter().map(ToString::to_string).collect();
    names.sort();
    let jail = t
        .chroot
        .as_ref()
        .map(|d| format!(", chrooted in {}", d.display()))
        .unwrap_or_default();
    info!(
        "running as uid {} gid {}{jail} with only {}",
        t.uid,
        t.gid,
        names.join(", ")
    );
    Ok(())
}

/// The directories `-f` reads from: a directory itself, a file's parent.
pub fn config_dirs(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = paths
        .iter()
        .filter_map(|p| {
            if p.is_dir() {
                Some(p.clone())
            } else {
                p.parent().map(Path::to_path_buf)
            }
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// The directories of the pattern files `acl ... -f` read (absolute ones:
/// a relative path means the working directory, which a chroot changes),
/// so that a reload inside the chroot reads them again.
pub fn pattern_dirs(config: &crate::config::Config) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = config
        .pattern_files
        .iter()
        .map(Path::new)
        .filter(|p| p.is_absolute())
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// The `-f` paths made absolute, so that a reload finds them from inside a
/// chroot too.
pub fn absolute(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect()
}
