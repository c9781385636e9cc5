//! The generation of the kernel's routes and neighbours, `FIB_GEN`: a flow
//! in the program keeps the next hop `bpf_fib_lookup` gave it while this
//! stays the same (lbxdp-ebpf's fib.rs). The watch bumps it on every
//! netlink notice of a route, neighbour, link, address or rule change, and
//! once a second besides: notices are dropped when the socket's buffer is
//! full, and a cache must not outlive a change by more than that.
use std::{os::fd::AsFd as _, time::Duration};

use aya::maps::{Array, Map, MapData};
use futures::StreamExt as _;
use lbxdp_common::FIB_GEN_MAP;
use rtnetlink::MulticastGroup;
use tracing::{debug, warn};

use super::{Datapath, DatapathError, error::chain};

/// The longest a next hop stays cached without a notice.
const AT_LEAST_EVERY: Duration = Duration::from_secs(1);

/// What changes a next hop.
const GROUPS: [MulticastGroup; 8] = [
    MulticastGroup::Link,
    MulticastGroup::Neigh,
    MulticastGroup::Ipv4Ifaddr,
    MulticastGroup::Ipv6Ifaddr,
    MulticastGroup::Ipv4Route,
    MulticastGroup::Ipv6Route,
    MulticastGroup::Ipv4Rule,
    MulticastGroup::Ipv6Rule,
];

/// A handle of its own on `FIB_GEN`: the watch writes it while the agent
/// loop owns the datapath.
pub struct FibGeneration {
    map: Array<MapData, u32>,
}

impl Datapath {
    pub fn fib_generation(&self) -> Result<FibGeneration, DatapathError> {
        let other = |what: &str, e: &dyn std::error::Error| DatapathError::Other(format!("{FIB_GEN_MAP}: {what}: {e}"));
        let fd = match self.map(FIB_GEN_MAP)? {
            Map::Array(data) => data.fd().as_fd().try_clone_to_owned(),
            _ => return Err(DatapathError::Other(format!("{FIB_GEN_MAP} is not an array"))),
        }
        .map_err(|e| other("duplicating its fd", &e))?;
        let data = MapData::from_fd(fd).map_err(|e| other("opening", &e))?;
        let map = Array::try_from(Map::Array(data)).map_err(|e| other("opening", &e))?;
        Ok(FibGeneration { map })
    }
}

impl FibGeneration {
    /// Starts a new generation: every cached next hop is looked up again.
    /// Never 0, which the program reads as "don't cache".
    pub fn bump(&mut self) -> Result<(), DatapathError> {
        // Read, not counted here: during a handover the old agent's watch
        // bumps the same map, and a generation must never come back.
        let now = self.map.get(&0, 0).unwrap_or(0);
        let next = now.wrapping_add(1).max(1);
        self.map
            .set(0, next, 0)
            .map_err(|e| DatapathError::Other(format!("{FIB_GEN_MAP}: {}", chain(&e))))
    }

    /// Bumps the generation on every change the kernel reports, and every
    /// second; stops when dropped.
    pub fn watch(mut self) -> Result<FibWatch, DatapathError> {
        let (conn, _handle, mut notices) = rtnetlink::new_multicast_connection(&GROUPS)
            .map_err(|e| DatapathError::Other(format!("netlink (route notices): {e}")))?;
        self.bump()?;
        let conn = tokio::spawn(conn);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(AT_LEAST_EVERY);
            let mut open = true;
            loop {
                tokio::select! {
                    notice = notices.next(), if open => {
                        if notice.is_none() {
                            warn!("netlink route notices ended: next hops are refreshed once a second only");
                            open = false;
                            continue;
                        }
                    }
                    _ = tick.tick() => {}
                }
                if let Err(e) = self.bump() {
                    debug!("{e}");
                }
            }
        });
        Ok(FibWatch { tasks: [task, conn] })
    }
}

/// The running watch; dropping it stops it.
pub struct FibWatch {
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Drop for FibWatch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
