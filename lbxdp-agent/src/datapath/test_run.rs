//! Running the loaded XDP program on a crafted frame (BPF_PROG_TEST_RUN),
//! and reading the flow tables back: what the packet tests use. Needs
//! CAP_BPF (root) like loading does; nothing is attached.
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

impl Datapath {
    /// Runs the `lbxdp` program once on `frame`, received on the current
    /// network namespace's loopback (the kernel's default ingress for a test
    /// run), and returns its XDP action and the frame as the program left it.
    /// The kernel refuses frames shorter than an Ethernet header (EINVAL).
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), DatapathError> {
        let prog: &Xdp = self
            .ebpf
            .as_ref()
            .and_then(|e| e.program(XDP_PROGRAM))
            .ok_or_else(|| DatapathError::Other(format!("the object has no program {XDP_PROGRAM}")))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| DatapathError::Other(chain(&e)))?;
        let mut out = vec![0u8; frame.len() + OUT_SLACK];
        let result = prog
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                repeat: 1,
                ..TestRunOptions::default()
            })
            .map_err(|e| DatapathError::Other(format!("BPF_PROG_TEST_RUN: {}", chain(&e))))?;
        out.truncate(result.data_size_out as usize);
        Ok((result.return_value, out))
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
