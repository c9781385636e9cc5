use aya::{
    Ebpf, EbpfLoader,
    maps::PerCpuArray,
    programs::{Xdp, XdpMode, xdp::XdpLinkId},
};
use lbxdp_common::{PROTO_STATS_MAP, ProtoStats, XDP_PROGRAM};
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

/// The loaded program, attached to one interface. Dropping it detaches the
/// program and frees its maps: we pin nothing, so nothing outlives the agent.
pub struct Datapath {
    ebpf: Ebpf,
    link: Option<XdpLinkId>,
    iface: String,
    mode: AttachMode,
}

impl Datapath {
    /// Loads the embedded object and attaches it to `iface`. `kernel_debug`
    /// keeps the program's debug-level aya-log statements; without it the
    /// verifier prunes them, so they cost nothing per packet.
    pub fn attach(iface: &str, mode: XdpModeArg, kernel_debug: bool) -> Result<Self, DatapathError> {
        let ifindex =
            nix::net::if_::if_nametoindex(iface).map_err(|_| DatapathError::NoSuchInterface(iface.to_string()))?;
        raise_memlock();

        let level = if kernel_debug {
            aya_log::Level::Debug
        } else {
            aya_log::Level::Info
        } as u8;
        let mut ebpf = EbpfLoader::new()
            .override_global(aya_log::LEVEL, &level, false)
            .load(OBJECT)
            .map_err(|e| DatapathError::classify(&e, false))?;

        let program: &mut Xdp = ebpf
            .program_mut(XDP_PROGRAM)
            .ok_or_else(|| DatapathError::Other(format!("the object has no program {XDP_PROGRAM}")))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| DatapathError::Other(chain(&e)))?;
        program.load().map_err(|e| DatapathError::classify(&e, true))?;

        let tries: &[AttachMode] = match mode {
            XdpModeArg::Auto => &[AttachMode::Native, AttachMode::Generic],
            XdpModeArg::Native => &[AttachMode::Native],
            XdpModeArg::Generic => &[AttachMode::Generic],
        };
        let mut last = None;
        for &m in tries {
            match program.attach_to_if_index(ifindex, m.flags()) {
                Ok(link) => {
                    return Ok(Self {
                        ebpf,
                        link: Some(link),
                        iface: iface.to_string(),
                        mode: m,
                    });
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

    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The program's aya-log records, to be polled by the caller.
    pub fn logger(&mut self) -> Option<aya_log::EbpfLogger<&'static dyn log::Log>> {
        match aya_log::EbpfLogger::init(&mut self.ebpf) {
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
        let map = self
            .ebpf
            .map(PROTO_STATS_MAP)
            .ok_or_else(|| DatapathError::Other(format!("the object has no map {PROTO_STATS_MAP}")))?;
        let array: PerCpuArray<_, ProtoStats> =
            PerCpuArray::try_from(map).map_err(|e| DatapathError::Other(chain(&e)))?;
        ProtoCounters::read(|idx| {
            array
                .get(&idx, 0)
                .map(|v| v.iter().copied().collect::<Vec<_>>())
                .map_err(|e| DatapathError::Other(chain(&e)))
        })
    }

    /// Detaches now, reporting failure (Drop would detach too, silently).
    pub fn detach(mut self) -> Result<(), DatapathError> {
        if let Some(link) = self.link.take() {
            let program: &mut Xdp = self
                .ebpf
                .program_mut(XDP_PROGRAM)
                .ok_or_else(|| DatapathError::Other(format!("the object has no program {XDP_PROGRAM}")))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| DatapathError::Other(chain(&e)))?;
            program.detach(link).map_err(|e| DatapathError::Other(chain(&e)))?;
            info!("detached from {}", self.iface);
        }
        Ok(())
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
