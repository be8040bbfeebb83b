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
    /// Distributed mode: the node's peer-to-peer port and its command-line arguments
    /// (`--uri`, `--bootstrap`), the same at every restart.
    cluster: Option<ClusterNode>,
    // dropped after the child is killed (fields drop in order; `Drop` kills first)
    dir: tempfile::TempDir,
}

#[derive(Clone)]
struct ClusterNode {
    p2p_port: u16,
    args: Vec<String>,
}

/// Two distinct free loopback ports (both listeners held until both are known).
fn free_ports() -> std::io::Result<(u16, u16)> {
    let a = TcpListener::bind("127.0.0.1:0")?;
    let b = TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// One more free loopback port.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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
            match Self::start_once(binary, None) {
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

    /// `bootstrap`: `None` for a single node; `Some(None)` for the first node of a cluster,
    /// `Some(Some(p2p))` for a node joining the cluster whose first node listens on `p2p`.
    fn start_once(binary: &Path, bootstrap: Option<Option<u16>>) -> Result<Self, ServerError> {
        let start_err = |e: std::io::Error| ServerError::Start {
            path: binary.to_path_buf(),
            reason: e.to_string(),
        };
        let dir = tempfile::Builder::new()
            .prefix("rollcall-qdrant")
            .tempdir()
            .map_err(start_err)?;
        let (http_port, grpc_port) = free_ports().map_err(start_err)?;
        let cluster = match bootstrap {
            None => None,
            Some(first) => {
                let p2p_port = free_port().map_err(start_err)?;
                let mut args = vec![];
                if let Some(first) = first {
                    args.push("--bootstrap".to_string());
                    args.push(format!("http://127.0.0.1:{first}"));
                }
                args.push("--uri".to_string());
                args.push(format!("http://127.0.0.1:{p2p_port}"));
                Some(ClusterNode { p2p_port, args })
            }
        };
        let child = Self::spawn(binary, dir.path(), http_port, grpc_port, cluster.as_ref())
            .map_err(start_err)?;
        let mut s = LocalQdrant {
            child,
            http_port,
            grpc_port,
            binary: binary.to_path_buf(),
            cluster,
            dir,
        };
        s.wait_ready()?;
        Ok(s)
    }

    fn spawn(
        binary: &Path,
        dir: &Path,
        http_port: u16,
        grpc_port: u16,
        cluster: Option<&ClusterNode>,
    ) -> std::io::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("qdrant.log"))?;
        let mut cmd = Command::new(binary);
        if let Some(c) = cluster {
            cmd.args(&c.args)
                .env("QDRANT__CLUSTER__ENABLED", "true")
                .env("QDRANT__CLUSTER__P2P__PORT", c.p2p_port.to_string());
        }
        cmd.current_dir(dir)
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
            self.cluster.as_ref(),
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

    /// The peer-to-peer port of a cluster node (`None` for a single node).
    pub fn p2p_port(&self) -> Option<u16> {
        self.cluster.as_ref().map(|c| c.p2p_port)
    }

    /// The server's storage directory.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
}

/// A Qdrant cluster (distributed mode) of local nodes on loopback: the first node starts the
/// cluster, the others join it through its peer-to-peer port. Each node is a [`LocalQdrant`]
/// (storage of its own, killed when dropped).
pub struct LocalCluster {
    nodes: Vec<LocalQdrant>,
}

impl LocalCluster {
    /// Starts `n` nodes and waits (up to 60 s) until the first node's `/cluster` lists all `n`
    /// peers with a leader elected.
    pub fn start(binary: &Path, n: usize) -> Result<Self, ServerError> {
        if !binary.is_file() {
            return Err(ServerError::Missing(binary.to_path_buf()));
        }
        let binary = &binary
            .canonicalize()
            .map_err(|_| ServerError::Missing(binary.to_path_buf()))?;
        let retry = |first: Option<u16>| {
            let mut last = String::new();
            for _ in 0..3 {
                match LocalQdrant::start_once(binary, Some(first)) {
                    Ok(s) => return Ok(s),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(ServerError::Start {
                path: binary.to_path_buf(),
                reason: last,
            })
        };
        let first = retry(None)?;
        let p2p = first.p2p_port().expect("a cluster node");
        let mut nodes = vec![first];
        for _ in 1..n.max(1) {
            nodes.push(retry(Some(p2p))?);
        }
        let c = LocalCluster { nodes };
        c.wait_peers(Duration::from_secs(60))?;
        Ok(c)
    }

    /// Waits until a live node's `/cluster` lists every node as a peer and names a leader.
    pub fn wait_peers(&self, limit: Duration) -> Result<(), ServerError> {
        let t0 = Instant::now();
        let want = self.nodes.len();
        let mut seen = String::new();
        while t0.elapsed() < limit {
            for node in &self.nodes {
                if let Some((200, body)) =
                    http_get(node.http_port(), "/cluster", Duration::from_secs(2))
                {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                        let peers = v["result"]["peers"].as_object().map_or(0, |p| p.len());
                        let leader = v["result"]["raft_info"]["leader"].is_u64();
                        if peers == want && leader {
                            return Ok(());
                        }
                        seen = body;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(ServerError::NotReady {
            path: self.nodes[0].binary.clone(),
            secs: limit.as_secs(),
            reason: format!("the cluster did not list {want} peers with a leader"),
            log: seen,
        })
    }

    /// The node URLs (gRPC), comma-separated, starting at node `first`: what `QDRANT_URL`
    /// takes for a client that fails over between the nodes.
    pub fn urls_from(&self, first: usize) -> String {
        let n = self.nodes.len();
        (0..n)
            .map(|k| self.nodes[(first + k) % n].url())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node(&mut self, i: usize) -> &mut LocalQdrant {
        &mut self.nodes[i]
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
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
