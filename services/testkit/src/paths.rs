//! Where the test data is: one rule for every test binary.

use std::path::{Path, PathBuf};

/// The workspace's root directory (the one with the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// `var` when set, else `<workspace>/../shared/<name>`; the directory must hold `probe`.
fn shared_dir(var: &str, name: &str, probe: &str) -> PathBuf {
    let (dir, from) = match std::env::var_os(var) {
        Some(d) if !d.is_empty() => (PathBuf::from(d), var.to_string()),
        _ => (
            workspace_root().join("../shared").join(name),
            format!("the default <workspace>/../shared/{name} ({var} is not set)"),
        ),
    };
    assert!(
        dir.join(probe).exists(),
        "test {name} not found at {} (from {from}): set {var} to the directory that holds `{probe}`",
        dir.display()
    );
    dir.canonicalize().unwrap_or(dir)
}

/// The test fixtures (photos under `faces/`, the video clip under `video/`, …):
/// `ROLLCALL_FIXTURES_DIR`, else `<workspace>/../shared/fixtures`. Panics with what to set
/// when they are not there.
pub fn fixtures_dir() -> PathBuf {
    shared_dir("ROLLCALL_FIXTURES_DIR", "fixtures", "faces")
}

/// One fixture file, `rel` under [`fixtures_dir`]; panics when it is missing.
pub fn fixture(rel: &str) -> PathBuf {
    let p = fixtures_dir().join(rel);
    assert!(
        p.exists(),
        "fixture {} missing (set ROLLCALL_FIXTURES_DIR)",
        p.display()
    );
    p
}

/// The ONNX models: `ROLLCALL_MODELS_DIR`, else `<workspace>/../shared/models`. Panics with
/// what to set when the directory is not there.
pub fn models_dir() -> PathBuf {
    shared_dir("ROLLCALL_MODELS_DIR", "models", ".")
}

/// The project's Python, by the rule `rollcall bench` uses for its references:
/// `ROLLCALL_PYTHON`, else `<workspace>/.cache/venv/bin/python` when scripts/setup.sh made it,
/// else `python3`.
pub fn project_python() -> PathBuf {
    std::env::var_os("ROLLCALL_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            let p = workspace_root().join(".cache/venv/bin/python");
            p.is_file().then_some(p)
        })
        .unwrap_or_else(|| PathBuf::from("python3"))
}
