//! A local Qdrant server process: one node on free loopback ports with a temporary storage
//! directory, stopped (killed by its pid) when the handle is dropped.
//!
//! Used by the tests (the remote backend runs against a real server: [`for_tests`]) and by
//! `rollcall bench gallery --qdrant-bin` (which reads the server's resident memory from
//! `/proc/<pid>/status`). The binary is the Qdrant 1.16.3 server of `../shared/tools/qdrant`
//! (see its README): no container, no config file.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a local server could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "no Qdrant server binary at {0} (expected ../shared/tools/qdrant next to the repository, \
         or ROLLCALL_QDRANT_BIN), and neither ROLLCALL_TEST_QDRANT_URL nor QDRANT_URL names a \
         running server"
    )]
    Missing(PathBuf),
    #[error("starting the Qdrant server {path}: {reason}")]
    Start { path: PathBuf, reason: String },
    #[error(
        "the Qdrant server {path} was not ready within {secs} s: {reason}; its log ends: {log}"
    )]
    NotReady {
        path: PathBuf,
        secs: u64,
        reason: String,
        log: String,
    },
}

/// One running Qdrant node, killed when dropped.
pub struct LocalQdrant {
    child: Child,
    http_port: u16,
    grpc_port: u16,
    binary: PathBuf,
    // dropped after the child is killed (fields drop in order; `Drop` kills first)
    dir: tempfile::TempDir,
}

/// Two distinct free loopback ports (both listeners held until both are known).
fn free_ports() -> std::io::Result<(u16, u16)> {
    let a = TcpListener::bind("127.0.0.1:0")?;
    let b = TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// `GET path` on `127.0.0.1:port` over plain HTTP/1.1: (status, body).
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    Some((status, body.to_string()))
}

/// `VmRSS` of a process, bytes (Linux `/proc/<pid>/status`).
pub fn rss_of_pid(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

impl LocalQdrant {
    /// Starts `binary` on free loopback ports (HTTP and gRPC) with storage and snapshots in a
    /// new temporary directory, and waits (up to 60 s) until `/readyz` answers 200.
    pub fn start(binary: &Path) -> Result<Self, ServerError> {
        if !binary.is_file() {
            return Err(ServerError::Missing(binary.to_path_buf()));
        }
        // absolute: the server runs in its own directory, where a relative path (as
        // `--qdrant-bin ../shared/tools/qdrant`) would name nothing
        let binary = &binary
            .canonicalize()
            .map_err(|_| ServerError::Missing(binary.to_path_buf()))?;
        let mut last = String::new();
        // Ports are picked free, then handed to the server: another process may take one in
        // between, so a start that fails is retried on new ports.
        for _ in 0..3 {
            match Self::start_once(binary) {
                Ok(s) => return Ok(s),
                Err(e @ ServerError::Missing(_)) => return Err(e),
                Err(e) => last = e.to_string(),
            }
        }
        Err(ServerError::Start {
            path: binary.to_path_buf(),
            reason: last,
        })
    }

    fn start_once(binary: &Path) -> Result<Self, ServerError> {
        let start_err = |e: std::io::Error| ServerError::Start {
            path: binary.to_path_buf(),
            reason: e.to_string(),
        };
        let dir = tempfile::Builder::new()
            .prefix("rollcall-qdrant")
            .tempdir()
            .map_err(start_err)?;
        let (http_port, grpc_port) = free_ports().map_err(start_err)?;
        let child = Self::spawn(binary, dir.path(), http_port, grpc_port).map_err(start_err)?;
        let mut s = LocalQdrant {
            child,
            http_port,
            grpc_port,
            binary: binary.to_path_buf(),
            dir,
        };
        s.wait_ready()?;
        Ok(s)
    }

    fn spawn(binary: &Path, dir: &Path, http_port: u16, grpc_port: u16) -> std::io::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("qdrant.log"))?;
        Command::new(binary)
            .current_dir(dir)
            .env("QDRANT__SERVICE__HOST", "127.0.0.1")
            .env("QDRANT__SERVICE__HTTP_PORT", http_port.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", grpc_port.to_string())
            .env("QDRANT__STORAGE__STORAGE_PATH", dir.join("storage"))
            .env("QDRANT__STORAGE__SNAPSHOTS_PATH", dir.join("snapshots"))
            .env("QDRANT__TELEMETRY_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
    }

    /// Waits (up to 60 s) until `/readyz` answers 200.
    fn wait_ready(&mut self) -> Result<(), ServerError> {
        let limit = Duration::from_secs(60);
        let t0 = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.not_ready(limit, format!("it exited ({status})")));
            }
            if matches!(
                http_get(self.http_port, "/readyz", Duration::from_secs(2)),
                Some((200, _))
            ) {
                return Ok(());
            }
            if t0.elapsed() > limit {
                return Err(self.not_ready(limit, "/readyz never answered 200".into()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the node (SIGKILL, as a crash or a pulled plug would): its ports stop answering
    /// until [`LocalQdrant::restart`].
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the node again on the same ports and storage (it recovers from its write-ahead
    /// log) and waits until it is ready.
    pub fn restart(&mut self) -> Result<(), ServerError> {
        self.kill();
        self.child = Self::spawn(
            &self.binary,
            self.dir.path(),
            self.http_port,
            self.grpc_port,
        )
        .map_err(|e| ServerError::Start {
            path: self.binary.clone(),
            reason: e.to_string(),
        })?;
        self.wait_ready()
    }

    fn not_ready(&mut self, limit: Duration, reason: String) -> ServerError {
        let log = std::fs::read_to_string(self.dir.path().join("qdrant.log")).unwrap_or_default();
        let tail: String = log
            .lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ");
        ServerError::NotReady {
            path: self.binary.clone(),
            secs: limit.as_secs(),
            reason,
            log: tail,
        }
    }

    /// gRPC URL (what rollcall's `QDRANT_URL` takes).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// REST port (`/readyz`, `/metrics`, `/collections`).
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory now (`VmRSS`).
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_of_pid(self.pid())
    }

    /// The server's storage directory.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
}

impl Drop for LocalQdrant {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Qdrant server binary: `ROLLCALL_QDRANT_BIN`, else `../shared/tools/qdrant` next to the
/// repository root.
pub fn default_binary(repo_root: &Path) -> PathBuf {
    match std::env::var_os("ROLLCALL_QDRANT_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root.join("../shared/tools/qdrant"),
    }
}

/// A Qdrant server for a test: one named by the environment or one started for it.
pub enum TestQdrant {
    /// `ROLLCALL_TEST_QDRANT_URL` (what `scripts/test.sh` exports), else `QDRANT_URL`.
    External { url: String },
    /// Started from the binary for this test; killed on drop.
    Local(LocalQdrant),
}

impl TestQdrant {
    /// gRPC URL.
    pub fn url(&self) -> String {
        match self {
            TestQdrant::External { url } => url.clone(),
            TestQdrant::Local(l) => l.url(),
        }
    }

    /// `QDRANT_API_KEY` for an external server; none for a local one.
    pub fn api_key(&self) -> Option<String> {
        match self {
            TestQdrant::External { .. } => std::env::var("QDRANT_API_KEY").ok(),
            TestQdrant::Local(_) => None,
        }
    }
}

/// The server a test runs against: `ROLLCALL_TEST_QDRANT_URL`, else `QDRANT_URL`, else a node
/// started from [`default_binary`]`(repo_root)`. An error (tests panic with it) when there is
/// neither: the remote backend is never skipped silently.
pub fn for_tests(repo_root: &Path) -> Result<TestQdrant, ServerError> {
    for var in ["ROLLCALL_TEST_QDRANT_URL", "QDRANT_URL"] {
        if let Ok(url) = std::env::var(var) {
            if !url.is_empty() {
                return Ok(TestQdrant::External { url });
            }
        }
    }
    LocalQdrant::start(&default_binary(repo_root)).map(TestQdrant::Local)
}
