//! The datapath outlives the agent, as Cilium's does: the XDP links and the
//! maps are pinned under `/sys/fs/bpf/lbxdp/<instance>`, so when the agent
//! dies (SIGKILL, a crash, an upgrade) packets keep flowing on the last
//! tables, with health frozen. The next agent adopts the pins instead of
//! loading a new program: same maps, same flows, nothing dropped. A clean
//! stop (SIGTERM) or `lbxdp-agent --detach` removes them.
use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use aya::{
    maps::{Map, MapData},
    programs::links::FdLink,
};
use tracing::{debug, info};

use super::{
    AttachMode, Datapath, DatapathError, Sizes,
    error::chain,
    loader::{Link, object_id},
};

pub const BPFFS: &str = "/sys/fs/bpf";
/// statfs(2)'s f_type for bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

fn err(what: impl std::fmt::Display) -> DatapathError {
    DatapathError::Other(what.to_string())
}

/// Where an instance's pins live.
pub fn dir(instance: &str) -> PathBuf {
    Path::new(BPFFS).join("lbxdp").join(instance)
}

/// The default instance is the network namespace: agents in different
/// namespaces never adopt each other's datapath, and a new agent in the same
/// one finds the last one's.
pub fn default_instance() -> Result<String, DatapathError> {
    let ino = std::fs::metadata("/proc/self/ns/net")
        .map_err(|e| err(format!("/proc/self/ns/net: {e}")))?
        .ino();
    Ok(format!("net{ino}"))
}

/// Mounts bpffs on /sys/fs/bpf if nothing is mounted there yet.
pub fn ensure_bpffs() -> Result<(), DatapathError> {
    if let Ok(st) = nix::sys::statfs::statfs(BPFFS)
        && st.filesystem_type().0 == BPF_FS_MAGIC
    {
        return Ok(());
    }
    nix::mount::mount(
        Some("bpf"),
        BPFFS,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| err(format!("mounting bpffs on {BPFFS} (to pin the datapath): {e}")))?;
    info!("mounted bpffs on {BPFFS}");
    Ok(())
}

/// What a pinned datapath is, beside its pins.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PinnedDatapath {
    /// The embedded object it was loaded from: another object may lay its
    /// maps out differently, so it is not adopted.
    pub object: String,
    pub sizes: Sizes,
    /// (interface, "native" | "generic").
    pub links: Vec<(String, String)>,
}

fn link_path(dir: &Path, iface: &str) -> PathBuf {
    dir.join(format!("link-{iface}"))
}

fn maps_dir(dir: &Path) -> PathBuf {
    dir.join("maps")
}

impl Datapath {
    /// Pins the maps and the links under `dir`; from now on the datapath
    /// stays when the agent goes (until `detach`).
    pub fn pin(&mut self, dir: &Path) -> Result<(), DatapathError> {
        std::fs::create_dir_all(maps_dir(dir)).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        // The object's own sections (.rodata, .bss) live as long as the
        // program does, and the kernel won't pin a frozen one: not ours to pin.
        for (name, map) in self.maps.iter().filter(|(n, _)| !n.starts_with('.')) {
            let path = maps_dir(dir).join(name);
            if !path.exists() {
                map.pin(&path)
                    .map_err(|e| err(format!("pinning {name}: {}", chain(&e))))?;
            }
        }
        let links = std::mem::take(&mut self.links);
        let mut kept = Vec::new();
        for (iface, link, mode) in links {
            let link = match link {
                Link::Owned(id) => {
                    let path = link_path(dir, &iface);
                    let xdp_link = self.program()?.take_link(id).map_err(|e| err(chain(&e)))?;
                    let fd: FdLink = xdp_link.try_into().map_err(|e: aya::programs::links::LinkError| {
                        err(format!(
                            "{iface}: the XDP attachment is not a bpf_link, so it can't be pinned: {}",
                            chain(&e)
                        ))
                    })?;
                    fd.pin(&path)
                        .map_err(|e| err(format!("pinning the link on {iface}: {}", chain(&e))))?;
                    Link::Pinned(path)
                }
                pinned => pinned,
            };
            kept.push((iface, link, mode));
        }
        self.links = kept;
        self.pin_dir = Some(dir.to_path_buf());
        debug!("datapath pinned under {}", dir.display());
        Ok(())
    }

    /// What the handover records of the pinned datapath.
    pub fn pinned(&self) -> PinnedDatapath {
        PinnedDatapath {
            object: object_id(),
            sizes: self.sizes,
            links: self
                .links
                .iter()
                .map(|(i, _, m)| (i.clone(), m.as_str().to_string()))
                .collect(),
        }
    }

    /// Opens the datapath pinned under `dir`: its maps, and its links as
    /// they are. Nothing is loaded or attached.
    pub fn adopt(dir: &Path, pinned: &PinnedDatapath) -> Result<Self, DatapathError> {
        if pinned.object != object_id() {
            return Err(err(format!(
                "the datapath pinned under {} was loaded from another XDP object",
                dir.display()
            )));
        }
        let mut maps = std::collections::HashMap::new();
        let entries = std::fs::read_dir(maps_dir(dir)).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let data = MapData::from_pin(entry.path()).map_err(|e| err(format!("map {name}: {}", chain(&e))))?;
            let map = Map::from_map_data(data).map_err(|e| err(format!("map {name}: {}", chain(&e))))?;
            maps.insert(name, map);
        }
        let mut links = Vec::new();
        for (iface, mode) in &pinned.links {
            let path = link_path(dir, iface);
            if !path.exists() {
                return Err(err(format!("{}: no pinned link", path.display())));
            }
            let mode = if mode == "native" {
                AttachMode::Native
            } else {
                AttachMode::Generic
            };
            links.push((iface.clone(), Link::Pinned(path), mode));
        }
        Ok(Self::from_parts(
            None,
            maps,
            links,
            pinned.sizes,
            Some(dir.to_path_buf()),
        ))
    }

    /// Removes the map pins and the instance's directory (the links were
    /// unpinned by `detach`).
    pub(super) fn unpin_all(&mut self) -> Result<(), DatapathError> {
        if let Some(dir) = self.pin_dir.take() {
            remove(&dir)?;
        }
        Ok(())
    }
}

/// Unpins a link. Nothing else holds it (the agent closed its descriptor
/// when it pinned it), so the kernel detaches it.
pub(super) fn unpin_link(path: &Path) -> Result<(), DatapathError> {
    crate::outside::remove_file(path).map_err(|e| err(format!("{}: {e}", path.display())))
}

/// Removes everything pinned under `dir`: the links (which detaches them)
/// and the maps (freed once no program uses them).
pub fn remove(dir: &Path) -> Result<(), DatapathError> {
    if !dir.exists() {
        return Ok(());
    }
    match crate::outside::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        // An agent that dropped its privileges empties its own directory but
        // may not remove it from root's: the empty directory holds nothing.
        Err(_) if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none()) => Ok(()),
        Err(e) => Err(err(format!("removing {}: {e}", dir.display()))),
    }
}
