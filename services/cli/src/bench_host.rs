//! Where a benchmark runs and what it is compared against: the machine's description that
//! every report carries, and the Python reference scripts under `benches/` (shared by
//! `cmd_bench` and `cmd_bench_pipeline`, which both sit above this module).

use crate::cmd_vision::VisionOpts;
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The CPU model and core count of this machine (in every benchmark report).
pub fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    })
}

/// Runs `benches/SCRIPT` with the project's Python (`ROLLCALL_PYTHON`, else
/// `.cache/venv/bin/python`, else `python3`), the models directory and thread count of `v`
/// plus `args`, and parses the JSON it prints.
pub fn run_reference(v: &VisionOpts, script: &str, args: &[String]) -> anyhow::Result<Value> {
    let root = project_root().context("cannot find the project root (benches/)")?;
    let script = root.join("benches").join(script);
    let python = std::env::var_os("ROLLCALL_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            let p = root.join(".cache/venv/bin/python");
            p.is_file().then_some(p)
        })
        .unwrap_or_else(|| PathBuf::from("python3"));
    let models = rollcall_vision::manifest::resolve_models_dir(v.models.as_deref());
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg("--models")
        .arg(&models)
        .arg("--threads")
        .arg(v.threads.to_string())
        .args(args)
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("parsing the reference's JSON")
}

/// The directory holding `benches/` (searched from the current directory and the executable).
pub fn project_root() -> Option<PathBuf> {
    let mut starts = vec![std::env::current_dir().ok()?];
    if let Some(d) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        starts.push(d);
    }
    starts.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."));
    for s in starts {
        let mut d: Option<&Path> = Some(&s);
        while let Some(dir) = d {
            if dir.join("benches/vision_reference.py").is_file() {
                return Some(dir.to_path_buf());
            }
            d = dir.parent();
        }
    }
    None
}
