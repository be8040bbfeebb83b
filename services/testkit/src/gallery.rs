//! The gallery conformance suite (every backend passes it: `rollcall-gallery`'s
//! `tests/conformance_*.rs`) and the synthetic templates it uses.

pub mod conformance;

/// Synthetic clustered templates: the generator of `rollcall bench gallery`, compiled from the
/// same file.
#[path = "../../cli/src/bench/synth.rs"]
pub mod synth;
