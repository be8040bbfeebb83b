//! Mutation fuzzing on proptest (stable Rust, no instrumentation), shared by the fuzz targets
//! (`tests/fuzz.rs`, the API's in `services/api/tests/api.rs`, serve's config in
//! `services/cli/src/cmd_serve.rs`).
//!
//! A target starts from its corpus, `tests/fuzz/corpus/<target>/` (real inputs, and every input
//! that ever made a target fail, kept as a regression seed): each file is checked as it is, then
//! [`cases`] inputs made by applying up to eight random mutations (bit flips, interesting values
//! such as 0xFF…FF or 0x7FFFFFFF written over a header field, truncation, deletion, duplication,
//! insertion, splicing in part of another seed) to a seed. A check returns `Err` for a wrong
//! answer; a panic is caught by proptest and is a failure too. The failing input (shrunk) is
//! written to `tests/fuzz/crashes/` and the test fails with it.
//!
//! Cases per target: `ROLLCALL_FUZZ_CASES` (the suite runs each target's default, a few
//! thousand, from a fixed seed so that CI is repeatable); `scripts/fuzz.sh --long` runs
//! 100 000 per target from a random seed.

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The repository root (the fuzz corpus is under `tests/fuzz/`).
pub use rollcall_testkit::workspace_root as repo_root;

/// Cases for a target whose suite default is `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("ROLLCALL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether this is a long run (`ROLLCALL_FUZZ_LONG=1`, set by `scripts/fuzz.sh --long`): a
/// random seed instead of the suite's fixed one.
pub fn long() -> bool {
    std::env::var("ROLLCALL_FUZZ_LONG").is_ok_and(|v| v == "1")
}

/// Every file of `tests/fuzz/corpus/<target>/`, sorted by name.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = repo_root().join("tests/fuzz/corpus").join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "empty corpus {}", dir.display());
    out
}

#[derive(Debug, Clone)]
pub enum Mutation {
    Flip {
        at: u32,
        bit: u8,
    },
    Byte {
        at: u32,
        value: u8,
    },
    /// A 1-, 2- or 4-byte "interesting" value (0, 0xFF…, 0x7F…, 0x80…) at a position, in either
    /// byte order: the values that break length and size fields.
    Magic {
        at: u32,
        which: u8,
    },
    Truncate {
        at: u32,
    },
    Delete {
        at: u32,
        len: u16,
    },
    Duplicate {
        at: u32,
        len: u16,
    },
    Insert {
        at: u32,
        bytes: Vec<u8>,
    },
    /// Part of another seed written in.
    Splice {
        at: u32,
        seed: u32,
        from: u32,
        len: u16,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<u32>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        2 => (any::<u32>(), any::<u8>()).prop_map(|(at, value)| Mutation::Byte { at, value }),
        3 => (any::<u32>(), any::<u8>()).prop_map(|(at, which)| Mutation::Magic { at, which }),
        1 => any::<u32>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<u32>(), 1u16..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => (any::<u32>(), 1u16..64).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        1 => (any::<u32>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<u32>(), any::<u32>(), any::<u32>(), 1u16..128)
            .prop_map(|(at, seed, from, len)| Mutation::Splice { at, seed, from, len }),
    ]
}

const MAGIC: &[&[u8]] = &[
    &[0x00],
    &[0xFF],
    &[0x7F],
    &[0x80],
    &[0xFF, 0xFF],
    &[0x7F, 0xFF],
    &[0x00, 0x00],
    &[0xFF, 0xFF, 0xFF, 0xFF],
    &[0x7F, 0xFF, 0xFF, 0xFF],
    &[0xFF, 0xFF, 0xFF, 0x7F],
    &[0x80, 0x00, 0x00, 0x00],
    &[0x00, 0x00, 0x00, 0x80],
    &[0x00, 0x00, 0x00, 0x00],
];

/// Applies `muts` to `b` (positions taken modulo the current length).
pub fn apply(mut b: Vec<u8>, muts: &[Mutation], seeds: &[Vec<u8>]) -> Vec<u8> {
    for m in muts {
        let len = b.len();
        let pos = |at: u32| if len == 0 { 0 } else { at as usize % len };
        match m {
            Mutation::Flip { at, bit } if len > 0 => b[pos(*at)] ^= 1 << bit,
            Mutation::Byte { at, value } if len > 0 => b[pos(*at)] = *value,
            Mutation::Magic { at, which } if len > 0 => {
                let v = MAGIC[*which as usize % MAGIC.len()];
                let p = pos(*at);
                for (i, x) in v.iter().enumerate() {
                    if p + i < len {
                        b[p + i] = *x;
                    }
                }
            }
            Mutation::Truncate { at } => b.truncate(pos(*at)),
            Mutation::Delete { at, len: n } if len > 0 => {
                let p = pos(*at);
                let end = (p + *n as usize).min(len);
                b.drain(p..end);
            }
            Mutation::Duplicate { at, len: n } if len > 0 => {
                let p = pos(*at);
                let end = (p + *n as usize).min(len);
                let part = b[p..end].to_vec();
                b.splice(end..end, part);
            }
            Mutation::Insert { at, bytes } => {
                let p = if len == 0 {
                    0
                } else {
                    *at as usize % (len + 1)
                };
                b.splice(p..p, bytes.iter().copied());
            }
            Mutation::Splice {
                at,
                seed,
                from,
                len: n,
            } if !seeds.is_empty() => {
                let other = &seeds[*seed as usize % seeds.len()];
                if !other.is_empty() {
                    let f = *from as usize % other.len();
                    let part = &other[f..(f + *n as usize).min(other.len())];
                    let p = if len == 0 {
                        0
                    } else {
                        *at as usize % (len + 1)
                    };
                    let end = (p + part.len()).min(len);
                    b.splice(p..end, part.iter().copied());
                }
            }
            _ => {}
        }
    }
    b
}

/// Mutated seeds.
pub fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    let seeds = Arc::new(seeds);
    (0..n, proptest::collection::vec(mutation(), 0..8))
        .prop_map(move |(i, m)| apply(seeds[i].clone(), &m, &seeds))
}

/// What a target's run did.
#[derive(Debug, Clone, Copy)]
pub struct Ran {
    pub seeds: usize,
    pub cases: u32,
}

fn runner(cases: u32) -> TestRunner {
    let cfg = Config {
        cases,
        failure_persistence: None,
        // every mutated input is acceptable input: none is rejected
        max_global_rejects: 0,
        ..Config::default()
    };
    if long() {
        TestRunner::new(cfg)
    } else {
        TestRunner::new_with_rng(cfg, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    }
}

fn save_crash(target: &str, input: &[u8]) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    input.hash(&mut h);
    let dir = repo_root().join("tests/fuzz/crashes");
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join(format!("{target}-{:016x}", h.finish()));
    let _ = std::fs::write(&p, input);
    p
}

/// Checks every corpus entry of `target`, then `cases(default_cases)` mutated ones; prints and
/// returns the counts. Panics (the test fails) on the first failing input, saved under
/// `tests/fuzz/crashes/`.
pub fn run(
    target: &str,
    default_cases: u32,
    mut check: impl FnMut(&[u8]) -> Result<(), String>,
) -> Ran {
    let seeds = corpus(target);
    for (name, b) in &seeds {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(b)));
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("fuzz {target}: corpus file {name}: {e}"),
            Err(_) => panic!("fuzz {target}: corpus file {name} panicked"),
        }
    }
    let n = cases(default_cases);
    let bytes: Vec<Vec<u8>> = seeds.iter().map(|(_, b)| b.clone()).collect();
    let mut r = runner(n);
    // proptest takes an `Fn`; the checks keep counts
    let check = std::cell::RefCell::new(check);
    let result = r.run(&inputs(bytes), |input| {
        (check.borrow_mut())(&input).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        let detail = match &e {
            proptest::test_runner::TestError::Fail(why, input) => {
                let p = save_crash(target, input);
                format!(
                    "{why}; input ({} bytes) saved to {}",
                    input.len(),
                    p.display()
                )
            }
            other => other.to_string(),
        };
        panic!("fuzz {target}: {detail}");
    }
    let ran = Ran {
        seeds: seeds.len(),
        cases: n,
    };
    eprintln!(
        "fuzz {target}: {} corpus files and {} mutated inputs, 0 failures{}",
        ran.seeds,
        ran.cases,
        if long() {
            " (long run, random seed)"
        } else {
            ""
        }
    );
    ran
}

/// `path` relative to the repository root.
pub fn at_root(path: &str) -> PathBuf {
    repo_root().join(Path::new(path))
}
