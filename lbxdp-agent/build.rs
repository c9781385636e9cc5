//! Embeds the XDP object that `cargo xtask build` made, so the agent is one
//! self-contained binary. The eBPF crate needs its own toolchain (Debian's rustc
//! with std sources, bpf-linker), which is why xtask builds it and not this script.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LBXDP_EBPF_OBJECT");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    let obj = match std::env::var_os("LBXDP_EBPF_OBJECT") {
        Some(p) => PathBuf::from(p),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
            target.join("ebpf/bpfel-unknown-none/release/lbxdp-ebpf")
        }
    };
    println!("cargo:rerun-if-changed={}", obj.display());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("lbxdp-ebpf.o");
    if let Err(e) = std::fs::copy(&obj, &out) {
        panic!(
            "the XDP object {} is missing ({e}).\n\
             Run `cargo xtask build` first: it builds the eBPF crate with the eBPF toolchain \
             and then this agent, or set LBXDP_EBPF_OBJECT to a built object.",
            obj.display()
        );
    }
}
