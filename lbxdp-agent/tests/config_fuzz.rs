//! The parser against hostile input: random bytes and mutated corpus files
//! give diagnostics, never a panic or a hang.
use std::path::Path;

use lbxdp_agent::config::{Source, parse_sources};
use proptest::prelude::*;

fn corpus_files() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs");
    let mut out = Vec::new();
    for dir in ["valid", "invalid"] {
        let mut paths: Vec<_> = std::fs::read_dir(root.join(dir))
            .expect("corpus")
            .map(|e| e.expect("entry").path())
            .collect();
        paths.sort();
        out.extend(paths.iter().map(|p| std::fs::read(p).expect("read corpus file")));
    }
    out
}

fn parse(data: &[u8]) {
    let env = |name: &str| (name == "SET").then(|| "198.18.0.1:80".to_string());
    let _ = parse_sources(&[Source { name: "fuzz.cfg", data }], &env);
}

/// An edit to a corpus file: overwrite, insert or delete bytes, or splice
/// in a fragment HAProxy gives meaning to.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let fragment = prop::sample::select(vec![
        b"\"".to_vec(),
        b"'".to_vec(),
        b"\\".to_vec(),
        b"\\x".to_vec(),
        b"${".to_vec(),
        b"\"${SET}\"".to_vec(),
        b"#".to_vec(),
        b"\n".to_vec(),
        b"\0".to_vec(),
        b" ".to_vec(),
        b":".to_vec(),
        b"\nfrontend".to_vec(),
        b"\nbackend x\n".to_vec(),
        b"\n.if".to_vec(),
        b"\n.endif\n".to_vec(),
        b"[".to_vec(),
        b"]".to_vec(),
        b"-".to_vec(),
        b",".to_vec(),
        b"99999999999999999999".to_vec(),
        b"\xff\xfe".to_vec(),
        b"no ".to_vec(),
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (
            any::<usize>(),
            prop_oneof![fragment, prop::collection::vec(any::<u8>(), 0..16)]
        )
            .prop_map(|(i, f)| Edit::Insert(i, f)),
        (any::<usize>(), 0usize..64).prop_map(|(i, n)| Edit::Delete(i, n)),
    ]
}

fn apply(mut data: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = data.len().max(1);
        match e {
            Edit::Set(i, b) => {
                if let Some(x) = data.get_mut(i % len) {
                    *x = *b;
                }
            }
            Edit::Insert(i, f) => {
                let at = (i % (data.len() + 1)).min(data.len());
                data.splice(at..at, f.iter().copied());
            }
            Edit::Delete(i, n) => {
                let at = i % len;
                let end = (at + n).min(data.len());
                if at < end {
                    data.drain(at..end);
                }
            }
        }
    }
    data
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..4096)) {
        parse(&data);
    }

    #[test]
    fn mutated_corpus_files_never_panic(pick in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 1..12)) {
        let files = corpus_files();
        let base = files[pick.index(files.len())].clone();
        parse(&apply(base, &edits));
    }
}

#[test]
fn big_inputs_finish() {
    let started = std::time::Instant::now();
    // A 1 MB line, deep .if nesting, 300k servers (10 MB), invalid UTF-8.
    parse(&[b"frontend f\n bind :80 ".as_slice(), &vec![b'x'; 1 << 20], b"\n"].concat());
    parse(&".if 1\n".repeat(10_000).into_bytes());
    let mut many = b"listen l\n bind :80\n".to_vec();
    for i in 0..300_000 {
        many.extend_from_slice(format!(" server s{i} 198.18.{}.{}:80 check\n", i / 250 % 256, i % 250 + 1).as_bytes());
    }
    parse(&many);
    parse(&(0..=255u8).cycle().take(1 << 20).collect::<Vec<u8>>());
    assert!(started.elapsed().as_secs() < 60, "took {:?}", started.elapsed());
}
