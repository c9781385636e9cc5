//! How long a backend's table takes to rebuild: the Maglev fill (pure) and,
//! as root, writing it into the kernel's double-buffered map. Run by
//! `cargo xtask bench`; medians over repeated runs.
use std::time::{Duration, Instant};

use lbxdp_agent::{
    datapath::{Datapath, Sizes},
    maglev::{self, DEFAULT_TABLE_SIZE, Member},
};

const RUNS: usize = 25;

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

fn main() {
    for servers in [3usize, 10, 100] {
        let names: Vec<String> = (0..servers).map(|i| format!("web{i}")).collect();
        let members: Vec<Member<'_>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| Member {
                id: n,
                weight: 1 + (i % 3) as u32,
            })
            .collect();
        let times: Vec<Duration> = (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                let table = maglev::build(&members, DEFAULT_TABLE_SIZE).expect("table");
                std::hint::black_box(table);
                t.elapsed()
            })
            .collect();
        println!(
            "maglev build, {servers} servers, M={DEFAULT_TABLE_SIZE}: median {:?}",
            median(times)
        );
    }
    if !nix::unistd::geteuid().is_root() {
        println!("!!! SKIPPED the map write: loading the XDP object needs root !!!");
        return;
    }
    let sizes = Sizes {
        backends: 1,
        servers: 3,
        table_size: DEFAULT_TABLE_SIZE,
        flows: 1024,
        ..Sizes::default()
    };
    let mut dp = Datapath::load(sizes, false, lbxdp_common::XDP_PROGRAM).expect("loading the XDP object");
    let names = ["web1", "web2", "web3"];
    let members: Vec<Member<'_>> = names.iter().map(|n| Member { id: n, weight: 1 }).collect();
    let table = maglev::build(&members, DEFAULT_TABLE_SIZE).expect("table");
    let times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            dp.set_table(0, &table).expect("writing the table");
            t.elapsed()
        })
        .collect();
    println!(
        "map write of one {DEFAULT_TABLE_SIZE}-slot table (fill idle copy + flip): median {:?}",
        median(times)
    );
}
