use aya::{
    Ebpf, EbpfLoader,
    maps::PerCpuArray,
    programs::{Xdp, XdpMode, xdp::XdpLinkId},
};
use lbxdp_common::{
    BACKENDS_MAP, DEFAULT_MAX_FLOWS, DEFAULT_MAX_FRONTENDS, FLOWS_MAP, FRONTEND_STATS_MAP, FRONTENDS_MAP, MAGLEV_MAP,
    PROTO_STATS_MAP, ProtoStats, REPLIES_MAP, RULES_MAP, SERVER_STATS_MAP, SERVERS_MAP, XDP_PROGRAM,
};
use tracing::{debug, info, warn};

use super::{DatapathError, ProtoCounters, error::chain};

/// The XDP object built by `cargo xtask build`, embedded so the agent ships alone.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lbxdp-ebpf.o"));

/// What the operator asked for with `--xdp-mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum XdpModeArg {
    /// Native (driver) mode, falling back to generic when the driver refuses.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (skb) mode only: works on any interface, slower.
    Generic,
}

/// The mode the kernel accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    Native,
    Generic,
}

impl AttachMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        }
    }

    fn flags(self) -> XdpMode {
        match self {
            AttachMode::Native => XdpMode::Driver,
            AttachMode::Generic => XdpMode::Skb,
        }
    }
}

/// Map sizes that depend on the config, set when the object is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sizes {
    pub backends: u32,
    pub servers: u32,
    pub table_size: u32,
    pub flows: u32,
    /// (VIP, port) pairs: each takes a TCP and a UDP entry in `FRONTENDS`.
    pub vips: u32,
    /// Frontends (their counters).
    pub frontends: u32,
    /// Stick table entries, all tables together.
    pub stick: u32,
    /// The Maglev tables' seed (`maglev::build_seeded`).
    pub maglev_seed: u64,
}

impl Default for Sizes {
    fn default() -> Self {
        Self {
            backends: 1,
            servers: 1,
            table_size: crate::maglev::DEFAULT_TABLE_SIZE,
            flows: DEFAULT_MAX_FLOWS,
            vips: DEFAULT_MAX_FRONTENDS / 2,
            frontends: DEFAULT_MAX_FRONTENDS,
            stick: lbxdp_common::DEFAULT_MAX_STICK,
            maglev_seed: 0,
        }
    }
}

/// The loaded program, attached to one or more interfaces. Dropping it
/// detaches the program and frees its maps, unless they were pinned (see
/// `pin.rs`): then the datapath outlives the agent.
pub struct Datapath {
    /// The loaded object; None when the datapath was adopted from pins
    /// (the program then runs from the pinned link, and isn't ours to load).
    pub(super) ebpf: Option<Ebpf>,
    /// Every map but aya-log's, by name: taken out of `ebpf`, or opened from pins.
    pub(super) maps: std::collections::HashMap<String, aya::maps::Map>,
    pub(super) links: Vec<(String, Link, AttachMode)>,
    pub(super) sizes: Sizes,
    /// `lbxdp`, or `lbxdp_pass` for the far end of a veth.
    prog: &'static str,
    /// Where its pins are, once pinned or adopted.
    pub(super) pin_dir: Option<std::path::PathBuf>,
}

/// Identifies the embedded object: a pinned datapath is adopted only by an
/// agent that carries the same one.
pub(super) fn object_id() -> String {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    OBJECT.hash(&mut h);
    format!("{:016x}-{}", h.finish(), OBJECT.len())
}

/// How an attachment is held.
pub(super) enum Link {
    /// By the program: detached when the agent drops it.
    Owned(XdpLinkId),
    /// By a pin in bpffs: stays after the agent is gone.
    Pinned(std::path::PathBuf),
}

impl Datapath {
    /// Loads the embedded object and attaches it to `iface`, with the default sizes.
    pub fn attach(iface: &str, mode: XdpModeArg, kernel_debug: bool) -> Result<Self, DatapathError> {
        let mut dp = Self::load(Sizes::default(), kernel_debug, XDP_PROGRAM)?;
        dp.attach_to(iface, mode)?;
        Ok(dp)
    }

    /// Loads the embedded object with maps sized for a config. `kernel_debug`
    /// keeps the program's debug-level aya-log statements; without it the
    /// verifier prunes them, so they cost nothing per packet.
    pub fn load(sizes: Sizes, kernel_debug: bool, program: &'static str) -> Result<Self, DatapathError> {
        raise_memlock();
        let level = if kernel_debug {
            aya_log::Level::Debug
        } else {
            aya_log::Level::Info
        } as u8;
        let maglev_entries = sizes
            .backends
            .max(1)
            .checked_mul(2)
            .and_then(|n| n.checked_mul(lbxdp_common::maglev_chunks(sizes.table_size)))
            .ok_or_else(|| DatapathError::Other("Maglev tables too large: lower --maglev-size".into()))?;
        let mut ebpf = EbpfLoader::new()
            .override_global(aya_log::LEVEL, &level, false)
            .map_max_entries(MAGLEV_MAP, maglev_entries)
            .map_max_entries(BACKENDS_MAP, sizes.backends.max(1))
            .map_max_entries(SERVERS_MAP, sizes.servers.max(1))
            .map_max_entries(SERVER_STATS_MAP, sizes.servers.max(1))
            .map_max_entries(FRONTENDS_MAP, sizes.vips.max(1).saturating_mul(2))
            .map_max_entries(FRONTEND_STATS_MAP, sizes.frontends.max(1))
            .map_max_entries(RULES_MAP, sizes.frontends.max(1))
            .map_max_entries(lbxdp_common::STICK_MAP, sizes.stick.max(1024))
            .map_max_entries(FLOWS_MAP, sizes.flows.max(1024))
            .map_max_entries(REPLIES_MAP, sizes.flows.max(1024))
            .load(OBJECT)
            .map_err(|e| DatapathError::classify(&e, false))?;
        let prog: &mut Xdp = ebpf
            .program_mut(program)
            .ok_or_else(|| DatapathError::Other(format!("the object has no program {program}")))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| DatapathError::Other(chain(&e)))?;
        prog.load().map_err(|e| DatapathError::classify(&e, true))?;
        // aya-log's ring buffer stays in the object, where its logger looks.
        let names: Vec<String> = ebpf
            .maps()
            .map(|(n, _)| n.to_string())
            .filter(|n| n != "AYA_LOGS")
            .collect();
        let maps = names
            .into_iter()
            .filter_map(|n| ebpf.take_map(&n).map(|m| (n, m)))
            .collect();
        Ok(Self::from_parts(Some(ebpf), maps, Vec::new(), sizes, None).with_program(program))
    }

    pub(super) fn from_parts(
        ebpf: Option<Ebpf>,
        maps: std::collections::HashMap<String, aya::maps::Map>,
        links: Vec<(String, Link, AttachMode)>,
        sizes: Sizes,
        pin_dir: Option<std::path::PathBuf>,
    ) -> Self {
        Self {
            ebpf,
            maps,
            links,
            sizes,
            prog: XDP_PROGRAM,
            pin_dir,
        }
    }

    fn with_program(mut self, program: &'static str) -> Self {
        self.prog = program;
        self
    }

    /// A map by name.
    pub(super) fn map(&self, name: &str) -> Result<&aya::maps::Map, DatapathError> {
        self.maps
            .get(name)
            .ok_or_else(|| DatapathError::Other(format!("the object has no map {name}")))
    }

    pub(super) fn map_mut(&mut self, name: &str) -> Result<&mut aya::maps::Map, DatapathError> {
        self.maps
            .get_mut(name)
            .ok_or_else(|| DatapathError::Other(format!("the object has no map {name}")))
    }

    /// The map sizes it was loaded with.
    pub fn sizes(&self) -> Sizes {
        self.sizes
    }

    pub(super) fn program(&mut self) -> Result<&mut Xdp, DatapathError> {
        let name = self.prog;
        self.ebpf
            .as_mut()
            .ok_or_else(|| DatapathError::Other("the datapath was adopted from its pins: no program to attach".into()))?
            .program_mut(name)
            .ok_or_else(|| DatapathError::Other(format!("the object has no program {name}")))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| DatapathError::Other(chain(&e)))
    }

    /// Attaches the loaded program to one more interface, in native mode
    /// when allowed and possible, else generic.
    pub fn attach_to(&mut self, iface: &str, mode: XdpModeArg) -> Result<AttachMode, DatapathError> {
        let ifindex =
            nix::net::if_::if_nametoindex(iface).map_err(|_| DatapathError::NoSuchInterface(iface.to_string()))?;
        let tries: &[AttachMode] = match mode {
            XdpModeArg::Auto => &[AttachMode::Native, AttachMode::Generic],
            XdpModeArg::Native => &[AttachMode::Native],
            XdpModeArg::Generic => &[AttachMode::Generic],
        };
        let mut last = None;
        for &m in tries {
            match self.program()?.attach_to_if_index(ifindex, m.flags()) {
                Ok(link) => {
                    self.links.push((iface.to_string(), Link::Owned(link), m));
                    return Ok(m);
                }
                Err(e) => {
                    let reason = chain(&e);
                    if tries.len() > 1 {
                        warn!("{iface}: {} mode refused ({reason}); trying the next mode", m.as_str());
                    }
                    last = Some(DatapathError::Attach {
                        iface: iface.to_string(),
                        mode: m.as_str(),
                        reason,
                    });
                }
            }
        }
        Err(last.unwrap_or_else(|| DatapathError::Other("no XDP mode to try".into())))
    }

    /// The mode of the first interface (all get the same unless a driver refused).
    pub fn mode(&self) -> AttachMode {
        self.links.first().map_or(AttachMode::Generic, |l| l.2)
    }

    /// The interfaces, comma-separated.
    pub fn iface(&self) -> String {
        self.links.iter().map(|l| l.0.as_str()).collect::<Vec<_>>().join(",")
    }

    pub fn attachments(&self) -> impl Iterator<Item = (&str, AttachMode)> {
        self.links.iter().map(|l| (l.0.as_str(), l.2))
    }

    /// The program's aya-log records, to be polled by the caller.
    pub fn logger(&mut self) -> Option<aya_log::EbpfLogger<&'static dyn log::Log>> {
        let ebpf = self.ebpf.as_mut()?;
        match aya_log::EbpfLogger::init(ebpf) {
            Ok(l) => Some(l),
            Err(e) => {
                // The object has no log statements left once all are pruned.
                debug!("no eBPF logger: {e}");
                None
            }
        }
    }

    /// Per-protocol counters, summed over CPUs.
    pub fn counters(&self) -> Result<ProtoCounters, DatapathError> {
        let map = self.map(PROTO_STATS_MAP)?;
        let array: PerCpuArray<_, ProtoStats> =
            PerCpuArray::try_from(map).map_err(|e| DatapathError::Other(chain(&e)))?;
        ProtoCounters::read(|idx| {
            array
                .get(&idx, 0)
                .map(|v| v.iter().copied().collect::<Vec<_>>())
                .map_err(|e| DatapathError::Other(chain(&e)))
        })
    }

    /// Detaches now, reporting failure (Drop would detach owned links too,
    /// silently), and removes the pins if there are any.
    pub fn detach(mut self) -> Result<(), DatapathError> {
        for (iface, link, _) in std::mem::take(&mut self.links) {
            match link {
                Link::Owned(id) => self
                    .program()?
                    .detach(id)
                    .map_err(|e| DatapathError::Other(chain(&e)))?,
                Link::Pinned(path) => super::pin::unpin_link(&path)?,
            }
            info!("detached from {iface}");
        }
        self.unpin_all()
    }
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; later ones use memcg
/// and ignore it, and here the hard limit can't be raised anyway, so failing is fine.
fn raise_memlock() {
    use nix::sys::resource::{Resource, setrlimit};
    if let Err(e) = setrlimit(Resource::RLIMIT_MEMLOCK, libc::RLIM_INFINITY, libc::RLIM_INFINITY) {
        debug!("setrlimit(RLIMIT_MEMLOCK) failed ({e}); harmless on Linux >= 5.11");
    }
}
