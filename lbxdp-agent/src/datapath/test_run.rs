//! Running the loaded XDP program on a crafted frame (BPF_PROG_TEST_RUN),
//! and reading the flow tables back: what the packet tests and the
//! program's micro-benchmark use. Needs CAP_BPF (root) like loading does;
//! nothing is attached.
use std::time::Duration;

use aya::{
    maps::{HashMap, MapData},
    programs::{TestRun, TestRunOptions, Xdp},
};
use lbxdp_common::{FLOWS_MAP, Flow, FlowKey, REPLIES_MAP, Reply, XDP_PROGRAM};

use super::{Datapath, DatapathError, error::chain};

/// Room for the frame the program hands back: it never grows a packet (no
/// bpf_xdp_adjust_head/tail), so the input's length is enough; some slack
/// keeps a future encapsulation from failing with ENOSPC.
const OUT_SLACK: usize = 256;

/// What one BPF_PROG_TEST_RUN gave.
#[derive(Debug, Clone)]
pub struct TestRunOutcome {
    /// The XDP action of the last repetition.
    pub action: u32,
    /// The kernel's mean time per repetition (whole nanoseconds), measured
    /// around the loop that runs the program.
    pub mean: Duration,
    /// The frame as the last repetition left it.
    pub frame: Vec<u8>,
}

/// The kernel's `struct xdp_md` as BPF_PROG_TEST_RUN takes it in `ctx_in`:
/// data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
fn xdp_md(frame_len: usize, ingress_ifindex: u32) -> Vec<u8> {
    [0, frame_len as u32, 0, ingress_ifindex, 0, 0]
        .iter()
        .flat_map(|w: &u32| w.to_ne_bytes())
        .collect()
}

impl Datapath {
    fn xdp_program(&self) -> Result<&Xdp, DatapathError> {
        self.ebpf
            .as_ref()
            .and_then(|e| e.program(XDP_PROGRAM))
            .ok_or_else(|| DatapathError::Other(format!("the object has no program {XDP_PROGRAM}")))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| DatapathError::Other(chain(&e)))
    }

    /// Runs the `lbxdp` program once on `frame`, received on the current
    /// network namespace's loopback (the kernel's default ingress for a test
    /// run), and returns its XDP action and the frame as the program left it.
    /// The kernel refuses frames shorter than an Ethernet header (EINVAL).
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), DatapathError> {
        let out = self.test_run_repeat(frame, 1, 0)?;
        Ok((out.action, out.frame))
    }

    /// Runs the `lbxdp` program `repeat` times in the kernel on `frame`, as
    /// received on interface `ingress_ifindex` of the current namespace (0:
    /// its loopback), and returns the kernel's mean time per run. The kernel
    /// copies `frame` in once: every repetition after the first sees the
    /// frame as the previous one rewrote it, so a repeated figure is the
    /// cost of one path only for a frame the program leaves as it found it.
    pub fn test_run_repeat(
        &self,
        frame: &[u8],
        repeat: u32,
        ingress_ifindex: u32,
    ) -> Result<TestRunOutcome, DatapathError> {
        let prog = self.xdp_program()?;
        let mut out = vec![0u8; frame.len() + OUT_SLACK];
        let ctx = xdp_md(frame.len(), ingress_ifindex);
        let result = prog
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ctx_in: (ingress_ifindex != 0).then_some(&ctx[..]),
                repeat,
                ..TestRunOptions::default()
            })
            .map_err(|e| DatapathError::Other(format!("BPF_PROG_TEST_RUN: {}", chain(&e))))?;
        out.truncate(result.data_size_out as usize);
        Ok(TestRunOutcome {
            action: result.return_value,
            mean: result.duration,
            frame: out,
        })
    }

    /// The kernel's run count and total run time of the `lbxdp` program
    /// (bpf_stats): they move only while BPF run-time statistics are on
    /// (`aya::sys::enable_stats` or `sysctl kernel.bpf_stats_enabled`).
    pub fn run_stats(&self) -> Result<(u64, Duration), DatapathError> {
        let info = self
            .xdp_program()?
            .info()
            .map_err(|e| DatapathError::Other(chain(&e)))?;
        Ok((info.run_count(), info.run_time()))
    }

    /// Every entry of the client-side flow table (`FLOWS`).
    pub fn flows(&self) -> Result<Vec<(FlowKey, Flow)>, DatapathError> {
        self.lru_entries(FLOWS_MAP)
    }

    /// Every entry of the server-side reply table (`REPLIES`).
    pub fn replies(&self) -> Result<Vec<(FlowKey, Reply)>, DatapathError> {
        self.lru_entries(REPLIES_MAP)
    }

    fn lru_entries<V: aya::Pod>(&self, name: &str) -> Result<Vec<(FlowKey, V)>, DatapathError> {
        let map = self.map(name)?;
        let map: HashMap<&MapData, FlowKey, V> = HashMap::try_from(map).map_err(|e| DatapathError::Other(chain(&e)))?;
        map.iter()
            .map(|r| r.map_err(|e| DatapathError::Other(chain(&e))))
            .collect()
    }
}
