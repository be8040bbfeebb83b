//! The process-wide ONNX Runtime environment (loaded dynamically from `libonnxruntime.so`).

use crate::VisionError;
use ort::environment::Environment;
use ort::session::{builder::GraphOptimizationLevel, Session};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static ENV: OnceLock<Result<Environment, String>> = OnceLock::new();

/// File name of the library the set-up step installs.
pub const ORT_LIB_NAME: &str = "libonnxruntime.so.1.31.1";

/// Where to find `libonnxruntime`: `ORT_DYLIB_PATH`, else the project-local cache written by
/// `scripts/setup.sh` (searched from the current directory and the executable's directory upwards).
pub fn locate_library() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ORT_DYLIB_PATH") {
        if !p.is_empty() {
            return Some(PathBuf::from(p));
        }
    }
    let mut starts: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(d) = exe.parent() {
            starts.push(d.to_path_buf());
        }
    }
    for start in starts {
        let mut dir: Option<&Path> = Some(&start);
        while let Some(d) = dir {
            let cand = d.join(".cache/onnxruntime").join(ORT_LIB_NAME);
            if cand.is_file() {
                return Some(cand);
            }
            dir = d.parent();
        }
    }
    None
}

/// The shared environment, created on first use.
pub fn environment() -> Result<&'static Environment, VisionError> {
    let env = ENV.get_or_init(|| {
        let path = locate_library().ok_or_else(|| {
            format!("{ORT_LIB_NAME} not found: set ORT_DYLIB_PATH or run scripts/setup.sh")
        })?;
        if !path.is_file() {
            return Err(format!("ORT_DYLIB_PATH={} is not a file", path.display()));
        }
        let builder = ort::init_from(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        builder
            .with_name("rollcall")
            .build()
            .map_err(|e| e.to_string())
    });
    env.as_ref()
        .map_err(|e| VisionError::RuntimeUnavailable(e.clone()))
}

/// Execution options for a model session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Intra-op threads (1 = one core per session; the pipeline runs one session per worker).
    pub intra_threads: usize,
    /// Try the CUDA execution provider first (falls back to CPU, with a warning, when it cannot
    /// be registered: no `cuda` feature, a CPU-only libonnxruntime, no GPU).
    pub cuda: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            intra_threads: 1,
            cuda: false,
        }
    }
}

/// Where a model session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Cpu,
    Cuda,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
        }
    }
}

pub(crate) fn open_session(
    model: &str,
    path: &Path,
    opts: &SessionOptions,
) -> Result<(Session, Provider), VisionError> {
    let env = environment()?;
    let err = |e: ort::Error| VisionError::Inference {
        model: model.to_string(),
        message: e.to_string(),
    };
    let mut b = Session::builder(env).map_err(err)?;
    b = b
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| err(e.into()))?
        .with_intra_threads(opts.intra_threads.max(1))
        .map_err(|e| err(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| err(e.into()))?;
    #[allow(unused_mut)]
    let mut provider = Provider::Cpu;
    // ort is built without its own logging, so a provider that fails to register is caught
    // here (error_on_failure) and said in this crate's log, never silently dropped.
    #[cfg(feature = "cuda")]
    if opts.cuda {
        b = match b.with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
        {
            Ok(b) => {
                provider = Provider::Cuda;
                tracing::info!("{model}: running on the CUDA execution provider");
                b
            }
            Err(e) => {
                tracing::warn!(
                    "{model}: the CUDA execution provider could not be registered ({e}); running on the CPU"
                );
                e.recover()
            }
        };
    }
    #[cfg(not(feature = "cuda"))]
    if opts.cuda {
        tracing::warn!("built without the `cuda` feature; running {model} on the CPU");
    }
    let session = b.commit_from_file(path).map_err(err)?;
    Ok((session, provider))
}
