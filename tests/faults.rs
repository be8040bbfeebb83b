//! Faults while `serve` plays a school afternoon (the compact scenario of `tests/crash.rs`,
//! live over MJPEG, through `rollcall bench crash --cycles 0`): the database stopped for 30 s,
//! the data directory's disk full for a while, the Qdrant server backend killed for 30 s, a
//! camera that stalls then floods; and the scale-out set-up (two serves on one PostgreSQL
//! database and a three-node Qdrant cluster) with a Qdrant node killed. Each: serve stays up,
//! `/healthz` says what is degraded, and after recovery nothing is lost or doubled (the bench's
//! ground-truth check).

#[path = "common/compact.rs"]
mod compact;

/// One run at a time: each plays a live stream to a serve child on a 2-core machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

use rollcall_testkit::http;
use rollcall_testkit::scenario::CrashSummary;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A PostgreSQL instance of this test's own (`initdb` in a temporary directory, its own port),
/// never the machine's shared server, which other tests use at the same time.
struct OwnPostgres {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
}

fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect(
            "PostgreSQL server binaries under /usr/lib/postgresql (scripts/setup.sh installs them)",
        )
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect("initdb under /usr/lib/postgresql/*/bin")
}

fn as_postgres(bin: &Path, tool: &str, args: &[&str]) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(tool))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {tool} as postgres: {e}"))
}

impl OwnPostgres {
    fn start() -> OwnPostgres {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ok = Command::new("chown")
            .args(["-R", "postgres", &dir.path().display().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown the test's PostgreSQL directory");
        let bin = pg_bin();
        let data = dir.path().join("pg").display().to_string();
        let out = as_postgres(
            &bin,
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = OwnPostgres { dir, port, bin };
        pg.up();
        pg
    }

    fn up(&self) {
        let data = self.dir.path().join("pg").display().to_string();
        let log = self.dir.path().join("pg.log").display().to_string();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let out = as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &data, "-l", &log, "-o", &opts, "-w", "start"],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops it the hard way (as a crash or a pulled cable would: connections cut).
    fn down(&self) {
        let data = self.dir.path().join("pg").display().to_string();
        let out = as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &data, "-m", "immediate", "-w", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("pg").display().to_string();
        let _ = as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &data, "-m", "immediate", "stop"],
        );
    }
}

/// `bench crash --cycles 0` on the compact afternoon, in the background; returns the child and
/// serve's address once serve answers with its camera online.
fn start_day(keep: &Path, database_url: Option<&str>, qdrant_url: Option<&str>) -> (Child, String) {
    let scenario = compact::compact_scenario(keep.parent().unwrap());
    let mut cmd = rollcall_testkit::rollcall!();
    cmd.args([
        "bench",
        "crash",
        &scenario.display().to_string(),
        "--cycles",
        "0",
        "--keep",
    ])
    .arg(keep)
    .arg("--json")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(u) = database_url {
        cmd.args(["--database-url", u]);
    }
    if let Some(u) = qdrant_url {
        cmd.args(["--qdrant-url", u]);
    }
    let child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    let config = keep.join("serve.toml");
    let addr = loop {
        assert!(Instant::now() < deadline, "serve did not come up");
        if let Ok(text) = std::fs::read_to_string(&config) {
            let v: toml::Value = toml::from_str(&text).unwrap();
            let addr = v["listen"].as_str().unwrap().to_string();
            if let Some(h) = http::get(&addr, "/healthz", std::time::Duration::from_secs(3)) {
                if h.contains(r#""lobby":"online""#) {
                    break addr;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    (child, addr)
}

fn finish_day(child: Child, keep: &Path) -> CrashSummary {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(keep.join("serve.log")).unwrap_or_default();
    let v: CrashSummary = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{e}: {stdout}\n{}\nserve log:\n{log}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(v.ok, "{v:?}\nserve log:\n{log}");
    assert_eq!(v.lost_check_ins, 0, "{v:?}");
    assert_eq!(v.missed_in_gaps, 0, "no kill, no gap: {v:?}");
    assert_eq!(v.check_ins, v.expected_check_ins, "{v:?}");
    assert!(v.expected_check_ins > 0, "{v:?}");
    assert_eq!(v.duplicate_deductions, 0, "{v:?}");
    assert_eq!(v.lost_notices, 0, "{v:?}");
    assert!(out.status.success());
    v
}

/// The school's ledger in `data` and its first admin, as a new install makes them.
fn new_install(data: &Path) {
    use std::io::Write;
    let mut admin = rollcall_testkit::rollcall!()
        .args(["admin", "create", "--data"])
        .arg(data)
        .args(["--username", "boss", "--role", "admin", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    admin
        .stdin
        .take()
        .unwrap()
        .write_all(b"long enough password\n")
        .unwrap();
    assert!(admin.wait().unwrap().success());
}

/// Polls `/healthz` for `window`; returns every distinct `degraded` reason seen.
fn watch_health(addr: &str, window: Duration) -> Vec<String> {
    let end = Instant::now() + window;
    let mut seen = Vec::new();
    let mut answered = 0;
    while Instant::now() < end {
        if let Some(h) = http::get(addr, "/healthz", std::time::Duration::from_secs(3)) {
            answered += 1;
            if let Ok(v) = serde_json::from_str::<Value>(&h) {
                for r in v["degraded"].as_array().into_iter().flatten() {
                    let r = r.as_str().unwrap_or("").to_string();
                    if !seen.contains(&r) {
                        seen.push(r);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        answered > 0,
        "serve stayed up and answered /healthz during the fault"
    );
    seen
}

#[test]
fn postgres_stopped_for_30s_mid_day_serve_degrades_then_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let pg = OwnPostgres::start();
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("run");
    let (child, addr) = start_day(&keep, Some(&pg.url()), None);
    std::thread::sleep(Duration::from_secs(5));
    pg.down();
    let reasons = watch_health(&addr, Duration::from_secs(30));
    pg.up();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("finalize") || r.contains("ledger")),
        "/healthz said the ledger was degraded: {reasons:?}"
    );
    let v = finish_day(child, &keep);
    eprintln!("{v:?}");
}

#[test]
fn sqlite_disk_full_mid_day_serve_degrades_then_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    // the data directory on a small disk of its own; the run's log stays outside it (a
    // machine's logs go to the journal, not to the school's data disk)
    let keep = tmp.path().join("run");
    let mnt = keep.join("data");
    std::fs::create_dir_all(&mnt).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=96m", "tmpfs"])
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "this test needs to mount a small tmpfs (root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let (child, addr) = start_day(&keep, None, None);
    std::thread::sleep(Duration::from_secs(4));
    // fill the disk
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 1 << 20];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    let reasons = watch_health(&addr, Duration::from_secs(20));
    std::fs::remove_file(&filler).unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("data directory") || r.contains("ledger")),
        "/healthz said the data directory or the ledger was degraded: {reasons:?}"
    );
    let v = finish_day(child, &keep);
    eprintln!("{v:?}");
}

/// The gallery on a Qdrant server node of the test's own (../shared/tools/qdrant), killed
/// with SIGKILL 5 s into the day and restarted on the same storage 30 s later. Serve stays up
/// and says `gallery` in `/healthz`; frames analysed meanwhile are held and matched once the
/// node answers, so every walk-through of the outage is still checked in, once.
#[test]
fn qdrant_server_killed_for_30s_mid_day_serve_degrades_then_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let root = rollcall_testkit::workspace_root();
    let mut qdrant = rollcall_gallery::server::LocalQdrant::start(
        &rollcall_gallery::server::default_binary(&root),
    )
    .unwrap_or_else(|e| panic!("this test needs the Qdrant server binary: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("run");
    let (child, addr) = start_day(&keep, None, Some(&qdrant.url()));
    std::thread::sleep(Duration::from_secs(5));
    qdrant.kill();
    // an enrollment meanwhile is refused as a temporary failure, saying why
    let (status, body) = enroll_a_photo(&keep, &addr)
        .expect("serve answers an enrollment while the gallery is down");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("gallery_unavailable"), "{body}");
    let reasons = watch_health(&addr, Duration::from_secs(25));
    qdrant.restart().expect("the Qdrant node restarts");
    assert!(
        reasons.iter().any(|r| r.starts_with("gallery")),
        "/healthz said the gallery was degraded: {reasons:?}"
    );
    let v = finish_day(child, &keep);
    assert_eq!(v.gallery, "qdrant-server", "{v:?}");
    assert!(v.gallery_ok, "{v:?}");
    // the outage covered walk-throughs: they were held, not missed
    let log = std::fs::read_to_string(keep.join("serve.log")).unwrap_or_default();
    assert!(
        log.contains("holding frames"),
        "serve held frames during the outage:\n{log}"
    );
    eprintln!("{v:?}");
}

/// `POST path` with a bearer token and a photo: (status, body); `None` when serve did not
/// answer.
fn http_post_photo(addr: &str, path: &str, token: &str, photo: &[u8]) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: image/jpeg\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        photo.len()
    )
    .ok()?;
    s.write_all(photo).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, out.split_once("\r\n\r\n")?.1.to_string()))
}

/// One of obama's photos enrolled through serve's API at `addr`, with the bench's token
/// (`keep/api-token`): (status, body), or `None` when serve did not answer.
fn enroll_a_photo(keep: &Path, addr: &str) -> Option<(u16, String)> {
    let token = std::fs::read_to_string(keep.join("api-token")).unwrap();
    let photo = std::fs::read(rollcall_testkit::fixture("faces/obama/3.jpg")).unwrap();
    http_post_photo(addr, "/api/v1/students/obama/photos", token.trim(), &photo)
}

/// The scale-out set-up of ARCHITECTURE.md, played for real: a three-node Qdrant cluster of
/// the test's own (distributed mode on loopback; the run's collection in 3 shards × 2 copies,
/// write consistency 1) and two `serve` processes on one PostgreSQL database, one per door
/// of the two-door compact afternoon, each given every node (its own first). Node 0, the
/// cluster's first node and serve 1's first choice, is killed with SIGKILL mid-day and
/// restarted 20 s later. Required: neither serve reports its gallery degraded (identification
/// keeps answering), an enrollment through serve 1 during the outage succeeds or fails with a
/// clear error, and after the day nothing is lost or doubled and the index holds exactly the
/// sealed templates (the bench's checks).
#[test]
fn qdrant_cluster_node_killed_under_two_serves_on_postgres_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let root = rollcall_testkit::workspace_root();
    let mut cluster = rollcall_gallery::server::LocalCluster::start(
        &rollcall_gallery::server::default_binary(&root),
        3,
    )
    .unwrap_or_else(|e| panic!("this test needs the Qdrant server binary: {e}"));
    let pg = rollcall_testkit::pg::admin_url();
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("run");
    std::fs::create_dir_all(&keep).unwrap();
    let scenario = compact::compact_two_doors_scenario(tmp.path());
    let child = rollcall_testkit::rollcall!()
        .args(["bench", "crash", &scenario.display().to_string()])
        .args(["--cycles", "0", "--serves", "2", "--database-url", &pg])
        .args(["--qdrant-url", &cluster.urls_from(0), "--keep"])
        .arg(&keep)
        .arg("--json")
        .env("QDRANT_SHARDS", "3")
        .env("QDRANT_REPLICATION_FACTOR", "2")
        .env("QDRANT_WRITE_CONSISTENCY_FACTOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Some(child);
    // both serves up with their camera online
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut addrs = Vec::new();
    for (config, camera) in [("serve.toml", "lobby"), ("serve-2.toml", "side")] {
        let addr = loop {
            if let Some(st) = child.as_mut().unwrap().try_wait().unwrap() {
                let out = child.take().unwrap().wait_with_output().unwrap();
                panic!(
                    "bench crash exited ({st}): {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(Instant::now() < deadline, "{config}: serve did not come up");
            if let Ok(text) = std::fs::read_to_string(keep.join(config)) {
                let v: toml::Value = toml::from_str(&text).unwrap();
                let addr = v["listen"].as_str().unwrap().to_string();
                if let Some(h) = http::get(&addr, "/healthz", std::time::Duration::from_secs(3)) {
                    if h.contains(&format!(r#""{camera}":"online""#)) {
                        break addr;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        addrs.push(addr);
    }
    // one data directory, one heartbeat per serve (its `instance`)
    for hb in ["serve.heartbeat", "serve-2.heartbeat"] {
        assert!(keep.join("data").join(hb).is_file(), "{hb}");
    }
    std::thread::sleep(Duration::from_secs(3));
    cluster.node(0).kill();
    // an enrollment through serve 1 while node 0 is down
    let (status, body) =
        enroll_a_photo(&keep, &addrs[0]).expect("serve 1 answers an enrollment during the outage");
    assert!(
        status == 200 || (status == 503 && body.contains("gallery")),
        "enrollment during the outage: {status} {body}"
    );
    // identification keeps answering: neither serve says its gallery is degraded
    let end = Instant::now() + Duration::from_secs(20);
    let mut answered = [0u32; 2];
    while Instant::now() < end {
        for (i, addr) in addrs.iter().enumerate() {
            if let Some(h) = http::get(addr, "/healthz", std::time::Duration::from_secs(3)) {
                answered[i] += 1;
                let v: Value = serde_json::from_str(&h).unwrap_or(Value::Null);
                let degraded = v["degraded"].as_array().cloned().unwrap_or_default();
                assert!(
                    !degraded
                        .iter()
                        .any(|r| r.as_str().unwrap_or("").starts_with("gallery")),
                    "serve {} reports its gallery degraded with one node of three down: {h}",
                    i + 1
                );
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(answered.iter().all(|n| *n > 0), "{answered:?}");
    cluster.node(0).restart().expect("node 0 restarts");
    cluster
        .wait_peers(Duration::from_secs(60))
        .expect("node 0 rejoins the cluster");
    let v = finish_day(child.take().unwrap(), &keep);
    assert_eq!(v.serves, 2, "{v:?}");
    assert_eq!(v.gallery, "qdrant-server", "{v:?}");
    assert!(v.gallery_ok, "index = sealed templates: {v:?}");
    assert_eq!(v.stranger_check_ins, 0, "{v:?}");
    eprintln!("enrollment during the outage: {status}; {v:?}");
}

/// A camera that stalls, then floods: a tiny MJPEG server of the test's own serves one photo at
/// 10 fps, goes silent, then sends as fast as the socket takes. Serve stays up, `/healthz`
/// reports the camera stale during the silence, and the flood is absorbed by latest-frame-wins
/// (frames counted as dropped, queues bounded, memory flat).
#[test]
fn a_camera_that_stalls_then_floods_is_reported_and_kept_bounded() {
    use std::io::Write;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let jpeg = std::fs::read(rollcall_testkit::fixture("faces/obama/2.jpg")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cam_addr = listener.local_addr().unwrap();
    let phase = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0)); // 0 normal, 1 stall, 2 flood, 3 end
    let flooded = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let (phase, flooded) = (phase.clone(), flooded.clone());
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(mut s) = sock else { continue };
                let (phase, flooded, jpeg) = (phase.clone(), flooded.clone(), jpeg.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let _ = std::io::Read::read(&mut s, &mut buf);
                    let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=f\r\n\r\n");
                    loop {
                        let p = phase.load(std::sync::atomic::Ordering::SeqCst);
                        if p == 3 {
                            return;
                        }
                        if p == 1 {
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                        let part = write!(
                            s,
                            "--f\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                            jpeg.len()
                        )
                        .and_then(|_| s.write_all(&jpeg))
                        .and_then(|_| s.write_all(b"\r\n"));
                        if part.is_err() {
                            return;
                        }
                        if p == 2 {
                            flooded.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        } else {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                });
            }
        });
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = tmp.path().join("serve.toml");
    std::fs::write(
        &cfg,
        format!(
            "data = {:?}\nlisten = {addr:?}\nfinalize_every_s = 1\n\n[[cameras]]\nid = \"door\"\nurl = \"http://{cam_addr}/cam.mjpg\"\ncampus = \"main\"\nfps = 10\nstale_timeout_ms = 1500\n",
            tmp.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    new_install(&tmp.path().join("data"));
    let mut child = rollcall_testkit::rollcall!()
        .args(["serve", "--config", &cfg.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-9", &self.0.to_string()])
                .status();
        }
    }
    let _kill = Kill(child.id());
    let rss = |pid: u32| -> u64 { rollcall_testkit::stats::rss_kib(pid).unwrap_or(0) };
    let state = |want: &str, within: Duration| -> Value {
        let end = Instant::now() + within;
        loop {
            if let Some(h) = http::get(&addr, "/healthz", std::time::Duration::from_secs(3)) {
                let v: Value = serde_json::from_str(&h).unwrap();
                if v["cameras"]["door"] == want {
                    return v;
                }
                assert!(Instant::now() < end, "camera never {want}: {v}");
            } else {
                assert!(Instant::now() < end, "serve did not answer");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    state("online", Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(3));
    let rss_before = rss(child.id());
    phase.store(1, std::sync::atomic::Ordering::SeqCst);
    let stale = state("stale", Duration::from_secs(15));
    assert_eq!(stale["status"], "degraded", "{stale}");
    phase.store(2, std::sync::atomic::Ordering::SeqCst);
    state("online", Duration::from_secs(15));
    let mut worst_queue = 0;
    let end = Instant::now() + Duration::from_secs(8);
    while Instant::now() < end {
        if let Some(h) = http::get(&addr, "/healthz", std::time::Duration::from_secs(3)) {
            let v: Value = serde_json::from_str(&h).unwrap();
            worst_queue = worst_queue.max(v["queued_frames"].as_u64().unwrap_or(0));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let rss_after = rss(child.id());
    let sent = flooded.load(std::sync::atomic::Ordering::SeqCst);
    phase.store(3, std::sync::atomic::Ordering::SeqCst);
    let metrics = http::get(&addr, "/metrics", std::time::Duration::from_secs(3)).unwrap();
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{camera=\"door\"}}")))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or(0)
    };
    let processed = counter("rollcall_frames_processed_total");
    assert!(sent > 200, "the flood sent {sent} frames");
    assert!(
        processed < sent,
        "not every flooded frame was analysed: {processed} of {sent}"
    );
    assert!(
        worst_queue <= 65,
        "queues bounded: {worst_queue} frames waiting at worst"
    );
    assert!(
        rss_after < rss_before + 150 * 1024,
        "memory flat under the flood: {rss_before} kB → {rss_after} kB"
    );
    assert!(child.try_wait().unwrap().is_none(), "serve stayed up");
}

/// serve's stderr on a full disk (`/dev/full`: every write fails with ENOSPC) while it logs
/// (its one camera refuses connections, so it logs every reconnect): it stays up, answers
/// `/healthz`, and stops cleanly on SIGTERM. (A failed log write used to panic through
/// tracing-subscriber's `eprintln!`, and serve exited with status 101.)
#[test]
fn serve_whose_log_disk_is_full_stays_up_and_stops_cleanly() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let addr = format!("127.0.0.1:{}", free());
    let dead_camera = free(); // nothing listens there
    let cfg = tmp.path().join("serve.toml");
    std::fs::write(
        &cfg,
        format!(
            "data = {:?}\nlisten = {addr:?}\n\n[[cameras]]\nid = \"door\"\nurl = \"http://127.0.0.1:{dead_camera}/cam.mjpg\"\ncampus = \"main\"\nfps = 10\n",
            tmp.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    new_install(&tmp.path().join("data"));
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut child = rollcall_testkit::rollcall!()
        .args(["serve", "--config", &cfg.display().to_string()])
        .env("ROLLCALL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(full)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut answered = 0;
    // up, and still up after several reconnect attempts were logged (1 s, 2 s, 4 s apart)
    while Instant::now() < deadline && answered < 40 {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("serve exited with {st} while its stderr could not be written");
        }
        if http::get(&addr, "/healthz", std::time::Duration::from_secs(3)).is_some() {
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(answered >= 40, "serve answered /healthz {answered} times");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let st = child.wait().unwrap();
    assert!(st.success(), "serve stopped with {st}");
}
