//! What one agent leaves for the next beside the pinned datapath: enough
//! to take it over without dropping a flow. Pinned flows name their server
//! by id, so the ids go along; the VIPs and neighbour entries the agent
//! added, and the port reservation it made, go along so that whoever stops
//! last undoes them.
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::datapath::{
    net::{HostNet, IfAddr},
    pin::PinnedDatapath,
};

const FILE: &str = "agent.json";

/// bpffs holds only BPF objects, so the handover lives beside it in /run.
pub fn dir(instance: &str) -> PathBuf {
    Path::new("/run/lbxdp").join(instance)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ids {
    pub backends: Vec<((String, usize), u32)>,
    pub servers: Vec<((String, String, IpAddr, u16), u32)>,
    pub frontends: Vec<(String, u32)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handover {
    pub datapath: PinnedDatapath,
    pub ids: Ids,
    /// The (VIP, port) pairs in the frontend map.
    pub frontends: Vec<(IpAddr, u16)>,
    /// (interface, address, prefix) of the VIPs the agents added.
    pub vips: Vec<(String, IpAddr, u8)>,
    /// (interface, address) of the managed neighbour entries they added.
    pub neighbours: Vec<(String, IpAddr)>,
    /// `ip_local_reserved_ports` before the first agent reserved NAT ports.
    pub reserved_ports_before: Option<String>,
    /// (sysctl path, value before the first agent changed it).
    #[serde(default)]
    pub sysctls: Vec<(String, String)>,
    /// The agent that serves with the datapath now. An agent that took over
    /// (-sf, a master's reload) writes its pid here, and the one it replaces
    /// then leaves everything in place when it stops.
    #[serde(default)]
    pub owner: u32,
    /// `--announce-table`: where the VIPs' routes are, for `--detach`.
    #[serde(default)]
    pub announce_table: Option<u32>,
}

/// The live agent other than this one that owns the datapath in `dir`, if
/// any: this agent has been taken over from.
pub fn successor(dir: &Path) -> Option<u32> {
    let owner = Handover::read(dir).ok().flatten()?.owner;
    (owner != std::process::id() && crate::takeover::alive(owner)).then_some(owner)
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

impl Handover {
    /// The handover in `dir`, if an agent left one.
    /// Read through [`crate::outside`]: a chrooted agent reads it at exit to
    /// learn whether a successor took the datapath over.
    pub fn read(dir: &Path) -> anyhow::Result<Option<Self>> {
        // A handover is a few kilobytes; a megabyte is not one.
        match crate::outside::read(&path(dir), 1 << 20) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path(dir).display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", path(dir).display())),
        }
    }

    /// Gives `net` what the agents before added on its interface (VIPs,
    /// neighbour entries, sysctls), so that whoever stops last undoes it.
    pub fn give_to(&self, net: &mut HostNet) {
        let iface = net.name().to_string();
        let sysctl_dir = format!("/{iface}/");
        net.adopt(
            self.vips
                .iter()
                .filter(|v| v.0 == iface)
                .map(|v| IfAddr { addr: v.1, prefix: v.2 }),
            self.neighbours.iter().filter(|n| n.0 == iface).map(|n| n.1),
            self.sysctls.iter().filter(|(p, _)| p.contains(&sysctl_dir)).cloned(),
        );
    }

    /// Written whole or not at all (rename), so a kill mid-write leaves the last one.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        if !crate::outside::confined() {
            std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        }
        crate::outside::write_atomic(&path(dir), &serde_json::to_vec(self)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path(dir).display()))
    }
}

/// Removes the handover (the datapath it described is gone).
pub fn remove(dir: &Path) {
    let _ = crate::outside::remove_dir_all(dir);
}
