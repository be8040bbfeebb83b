//! `rollcall bench crash SCENARIO --cycles N [--database-url URL] [--seed S] --json`: crash
//! consistency of `serve`, measured.
//!
//! The scenario is set up as `run-scenario` sets it up (ledger, enrollment through the real
//! path), then its cameras are served live as MJPEG (camera-sim, the scene's clock running with
//! the wall clock) to a `rollcall serve` child process, whose clock is shifted onto the scene's
//! (`ROLLCALL_CLOCK_OFFSET_MS`). The child is killed with SIGKILL at `N` seeded random moments
//! (frames in flight, commits, the finalize timer, the dispatcher: wherever it is) and restarted
//! on the same data directory (and the same PostgreSQL database with `--database-url`) each
//! time; after the last kill it plays the day to its end and is stopped with SIGTERM. Then the
//! rest of the day is finalised and every due notice dispatched to the recording webhook
//! receiver (a child process of its own, `rollcall notify receiver`, journaling every delivery
//! by key), and the ledger is checked against the scenario's ground truth. With
//! `--qdrant-url` the gallery is a collection of the run's own on that Qdrant server (serve
//! searches it; the fault tests kill the node):
//!
//! - `lost_check_ins`: a student who walked in, whose check-in is not in the ledger, and whose
//!   walk-through did not overlap a time the process was down (those are `missed_in_gaps`,
//!   visible as a gap alert per camera: `gaps_visible`);
//! - `duplicate_deductions`, `stranger_check_ins` (attendance nobody expected);
//! - notices: `lost_notices` (webhook-channel outbox rows never received),
//!   `duplicate_notices` (one cause delivered under two keys to one recipient);
//!   `duplicate_deliveries` counts keys delivered more than once (a kill between sending and
//!   marking sent; the receiver keeps one notice per key, so no parent reads it twice);
//! - `gallery_ok`: every enrolled template is still in the gallery; `ledger_ok`: every
//!   deduction belongs to a recorded attendance, nothing parked or lost by the writer.
//!
//! Exit status: non-zero when anything was lost or doubled (printed JSON first).

use crate::cmd_scenario;
use crate::cmd_sim;
use crate::cmd_vision::VisionOpts;
use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rollcall_camera_sim::{LiveAnchor, MjpegServer, ServeOptions, StreamOptions};
use rollcall_domain::clock::{Clock, SystemClock};
use rollcall_domain::gallery::{CountScope, Gallery};
use rollcall_domain::ledger::{AttendanceStatus, EntryKind, LessonTiming};
use rollcall_ledger::Store;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct CrashOpts {
    pub scenario: PathBuf,
    pub cycles: usize,
    /// PostgreSQL server (admin URL): the ledger goes into a scratch database there.
    pub database_url: Option<String>,
    pub seed: u64,
    /// Inference workers of the serve child.
    pub workers: usize,
    /// Keep the run's files (data directory, serve logs) here.
    pub keep: Option<PathBuf>,
    /// A Qdrant server (gRPC URL): the gallery is a collection of the run's own there (deleted
    /// at the end) instead of the embedded one, and serve searches it. A cluster's nodes,
    /// comma-separated: serve `k` is given them all, starting at node `k`.
    pub qdrant_url: Option<String>,
    /// serve processes sharing the day (cameras dealt out among them; PostgreSQL and a Qdrant
    /// server required above 1; kills need a single serve).
    pub serves: usize,
    /// Two streams per camera: serve finds faces in the scenario's stream (`detect_url`) and
    /// cuts them from a main stream of this size (`url`), both served over MJPEG.
    pub main_size: Option<(u32, u32)>,
}

const WEBHOOK_SECRET: &str = "crash-bench-webhook-secret-0123456789";

/// A scene-time window `[from, to]`, ms.
type Window = (i64, i64);

fn overlaps(a: Window, b: Window) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out.split_once("\r\n\r\n")?.1.to_string())
}

/// The recording webhook receiver, a child process (`rollcall notify receiver`) journaling
/// every accepted delivery to `webhooks.jsonl`.
struct ReceiverProc {
    child: Child,
    url: String,
    journal: PathBuf,
}

impl ReceiverProc {
    fn start(base: &Path) -> anyhow::Result<ReceiverProc> {
        let exe = std::env::current_exe().context("the rollcall binary")?;
        let journal = base.join("webhooks.jsonl");
        let addr_file = base.join("receiver.addr");
        let _ = std::fs::remove_file(&journal);
        let _ = std::fs::remove_file(&addr_file);
        let mut child = Command::new(exe)
            .args(["notify", "receiver", "--journal"])
            .arg(&journal)
            .arg("--addr-file")
            .arg(&addr_file)
            .env("ROLLCALL_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting the webhook receiver")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file) {
                break a;
            }
            if let Some(st) = child.try_wait()? {
                bail!("the webhook receiver exited ({st})");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("the webhook receiver did not start within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(ReceiverProc {
            child,
            url: format!("http://{}/hook", addr.trim()),
            journal,
        })
    }

    fn url(&self) -> String {
        self.url.clone()
    }

    /// Stops the receiver; deliveries per key from its journal.
    fn stop(mut self) -> anyhow::Result<BTreeMap<String, u32>> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.journal)
            .with_context(|| format!("reading {}", self.journal.display()))?;
        let mut by_key = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("{}: {line}", self.journal.display()))?;
            let key = v["key"].as_str().unwrap_or_default().to_string();
            *by_key.entry(key).or_insert(0) += 1;
        }
        Ok(by_key)
    }
}

impl Drop for ReceiverProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Enrollments through serve's API all day, one every 2 s (each student's enrollment photo in
/// turn), in a thread of its own; serve may be down (killed): the request then fails.
struct Enroller {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    busy: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Value>,
}

impl Enroller {
    fn start(addr: String, token: String, photos: Vec<(String, Vec<u8>)>) -> Enroller {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (st, bz) = (stop.clone(), busy.clone());
        let thread = std::thread::spawn(move || {
            let (mut sent, mut enrolled, mut failed) = (0u64, 0u64, 0u64);
            let mut i = 0usize;
            while !st.load(Ordering::Relaxed) && !photos.is_empty() {
                let (student, photo) = &photos[i % photos.len()];
                i += 1;
                bz.store(true, Ordering::SeqCst);
                let r = http_post(
                    &addr,
                    &format!("/api/v1/students/{student}/photos"),
                    &token,
                    photo,
                );
                bz.store(false, Ordering::SeqCst);
                sent += 1;
                match r {
                    Some(200) => enrolled += 1,
                    _ => failed += 1,
                }
                for _ in 0..20 {
                    if st.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            json!({"sent": sent, "answered_200": enrolled, "failed_or_cut": failed})
        });
        Enroller { stop, busy, thread }
    }

    /// Whether an enrollment request is in flight now.
    fn in_flight(&self) -> bool {
        self.busy.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn stop(self) -> Value {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(Value::Null)
    }
}

/// `POST path` with a bearer token and a photo body; the status, or `None` when serve did not
/// answer (down, or killed mid-request).
fn http_post(addr: &str, path: &str, token: &str, body: &[u8]) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let kind = if body.starts_with(b"\x89PNG") {
        "image/png"
    } else {
        "image/jpeg"
    };
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .ok()?;
    s.write_all(body).ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace().nth(1)?.parse().ok()
}

/// One serve process's set-up: its address, config, log and cameras.
struct ServeSetup {
    addr: String,
    config: PathBuf,
    log: PathBuf,
    cameras: Vec<String>,
}

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// The serve child, its log and when it became ready.
struct ServeProc {
    child: Child,
}

impl ServeProc {
    fn spawn(config: &Path, env: &[(String, String)], log: &Path) -> anyhow::Result<ServeProc> {
        let exe = std::env::current_exe().context("the rollcall binary")?;
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut cmd = Command::new(exe);
        cmd.args(["serve", "--config", &config.display().to_string()])
            .env_remove("DATABASE_URL")
            .env_remove("QDRANT_URL")
            .env_remove("ROLLCALL_DATA")
            .env_remove("ROLLCALL_SCHOOL")
            .env_remove("ROLLCALL_LISTEN")
            // serve's log level: warn, unless ROLLCALL_BENCH_SERVE_LOG says otherwise
            .env(
                "ROLLCALL_LOG",
                std::env::var("ROLLCALL_BENCH_SERVE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Ok(ServeProc {
            child: cmd.spawn().context("starting rollcall serve")?,
        })
    }

    /// Waits until `/healthz` answers with every camera online (or `timeout`); once the
    /// scene is over (`day_over`), an answer is enough: no camera will come online again.
    fn wait_ready(
        &mut self,
        addr: &str,
        cameras: &[String],
        day_over: &dyn Fn() -> bool,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait()? {
                bail!("rollcall serve exited during start-up ({st})");
            }
            if let Some(body) = http_get(addr, "/healthz") {
                if let Ok(v) = serde_json::from_str::<Value>(&body) {
                    if day_over() || cameras.iter().all(|c| v["cameras"][c.as_str()] == "online") {
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("rollcall serve was not ready within {timeout:?}")
    }

    fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill()?; // SIGKILL
        self.child.wait()?;
        Ok(())
    }

    fn terminate(mut self, timeout: Duration) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait()? {
                if !st.success() {
                    bail!("rollcall serve stopped with {st}");
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        bail!("rollcall serve did not stop within {timeout:?} of SIGTERM")
    }
}

pub async fn run(v: &VisionOpts, o: &CrashOpts) -> anyhow::Result<Value> {
    let t_run = Instant::now();
    if o.serves == 0 {
        bail!("--serves must be at least 1");
    }
    if o.serves > 1 {
        if o.database_url.is_none() || o.qdrant_url.is_none() {
            bail!("--serves {} needs --database-url and --qdrant-url: the serve processes share the ledger and the gallery", o.serves);
        }
        if o.cycles > 0 {
            bail!(
                "--cycles kills a single serve: with --serves {} use --cycles 0",
                o.serves
            );
        }
    }
    let sim = cmd_sim::load(v, &o.scenario)?;
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let base = match &o.keep {
        Some(k) => {
            std::fs::create_dir_all(k)?;
            k.clone()
        }
        None => tmp.path().to_path_buf(),
    };
    let data = base.join("data");
    let scratch = match &o.database_url {
        Some(admin) => Some(
            rollcall_ledger::create_scratch_database(admin, "rollcall_crash")
                .await
                .context("creating the benchmark's PostgreSQL database")?,
        ),
        None => None,
    };
    let result = run_in(
        v,
        o,
        &sim,
        &base,
        &data,
        scratch.as_ref().map(|s| s.0.as_str()),
    )
    .await;
    if let (Some(admin), Some((_, name))) = (&o.database_url, &scratch) {
        if o.keep.is_none() {
            if let Err(e) = rollcall_ledger::drop_scratch_database(admin, name).await {
                tracing::warn!(error = %e, "cannot drop the benchmark database {name}");
            }
        }
    }
    let mut v = result?;
    v["seconds"] = json!((t_run.elapsed().as_secs_f64() * 10.0).round() / 10.0);
    Ok(v)
}

async fn open_root(data: &Path, db: Option<&str>) -> anyhow::Result<Store> {
    Ok(match db {
        Some(url) => Store::open(url).await?,
        None => Store::open_data_dir(data).await?,
    })
}

async fn run_in(
    v: &VisionOpts,
    o: &CrashOpts,
    sim: &rollcall_camera_sim::Simulation,
    base: &Path,
    data: &Path,
    db: Option<&str>,
) -> anyhow::Result<Value> {
    // 1. The school's day set up, every student enrolled (the embedded gallery under data/).
    // the template key: the set-up seals with it, serve enrolls with it (the API)
    let key_entry = rollcall_gallery::vault::Keyring::generate_entry("crash");
    let keys = rollcall_gallery::vault::Keyring::parse(&key_entry, None)?;
    let prepared = cmd_scenario::prepare_in(
        v,
        sim,
        data,
        open_root(data, db).await?,
        o.qdrant_url.clone(),
        Some(keys),
    )
    .await?;
    // a staff account and API token for the enrollments during the day
    let token = rollcall_api::auth::new_token("rc_");
    {
        let hash = rollcall_api::hash_password("crash-bench-password")
            .map_err(|e| anyhow!("{}", e.message))?;
        prepared
            .store
            .create_staff(
                &rollcall_ledger::NewStaff {
                    username: "bench".into(),
                    display_name: "Crash bench".into(),
                    role: rollcall_ledger::Role::Admin,
                    campuses: rollcall_ledger::CampusScope::All,
                },
                &hash,
            )
            .await?;
        let id = rollcall_api::auth::new_token("")[..12].to_string();
        prepared
            .store
            .create_api_token(
                "bench",
                &id,
                "crash bench",
                &rollcall_api::auth::token_hash(&token),
            )
            .await?;
        // for a test that drives serve's API during the day (the run's own throwaway account)
        write_private(&base.join("api-token"), &token)?;
    }
    let photos: Vec<(String, Vec<u8>)> = sim
        .scenario
        .file
        .students
        .iter()
        .flat_map(|s| {
            s.enrollment_photos
                .iter()
                .filter_map(|p| Some((s.id.clone(), std::fs::read(&p.path).ok()?)))
                .collect::<Vec<_>>()
        })
        .collect();
    let school = prepared.store.school_id().to_string();
    let tenant = prepared.tenant.clone();
    let enrolled_templates = prepared.gallery.count(&CountScope::tenant(&tenant)).await?;
    let campus_of = prepared.campus_of_camera.clone();
    prepared.store.close().await;
    prepared.root.close().await;
    // a server's collection stays until the end of the run (serve searches it; dropping it
    // deletes it); the embedded gallery is closed for serve to open
    let remote = prepared
        .gallery
        .collection()
        .map(|c| (c.url.clone(), c.collection.clone()));
    let remote_gallery = match remote {
        Some(_) => Some(prepared.gallery),
        None => {
            drop(prepared.gallery);
            None
        }
    };
    drop(prepared.pipeline);

    // 2. The recording webhook receiver (every channel of the outbox that is a webhook): a
    // child process of its own (`rollcall notify receiver`), journaling each delivery.
    let receiver = ReceiverProc::start(base)?;

    // 3. The scene's timeline, served live.
    let renderer = &sim.renderer;
    let cameras = renderer.camera_ids();
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    for c in &cameras {
        let t = renderer.frame_times(
            c,
            StreamOptions {
                continuous: true,
                ..Default::default()
            },
        )?;
        if let (Some(a), Some(b)) = (t.first(), t.last()) {
            first = first.min(*a);
            last = last.max(*b);
        }
    }
    if first > last {
        bail!("the scenario's cameras show nothing");
    }
    let lead = Duration::from_secs(3);
    let anchor_wall = SystemClock.now() + chrono::Duration::from_std(lead)?;
    let anchor = LiveAnchor {
        at: Instant::now() + lead,
        scenario_ms: first - 1000,
    };
    let offset_ms = anchor.scenario_ms - anchor_wall.timestamp_millis();
    let to_scene = |wall: DateTime<Utc>| wall.timestamp_millis() + offset_ms;
    let mjpeg = MjpegServer::start(
        renderer.clone(),
        "127.0.0.1:0",
        ServeOptions {
            live: Some(anchor),
            ..Default::default()
        },
    )?;
    let main_mjpeg = match o.main_size {
        Some((w, h)) => Some(MjpegServer::start(
            sim.main_stream(w, h)?,
            "127.0.0.1:0",
            ServeOptions {
                live: Some(anchor),
                ..Default::default()
            },
        )?),
        None => None,
    };

    // 4. serve's config: the cameras on the MJPEG server, finalisation every second. With
    // several serves, camera `i` goes to serve `i % serves`; serve 1 is `serve.toml`, serve
    // k > 1 `serve-k.toml` with `instance = "serve-k"`, all on the one data directory (as the
    // replicas of deploy/docker-compose.yml share theirs).
    let mut procs_cfg: Vec<ServeSetup> = Vec::new();
    for k in 0..o.serves {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let (instance, config, log) = if k == 0 {
            (
                "serve".to_string(),
                base.join("serve.toml"),
                base.join("serve.log"),
            )
        } else {
            (
                format!("serve-{}", k + 1),
                base.join(format!("serve-{}.toml", k + 1)),
                base.join(format!("serve-{}.log", k + 1)),
            )
        };
        let mine: Vec<String> = cameras
            .iter()
            .enumerate()
            .filter(|(i, _)| i % o.serves == k)
            .map(|(_, c)| c.clone())
            .collect();
        let mut toml_text = format!(
            "data = {:?}\ninstance = {:?}\nschool = {:?}\nlisten = {:?}\nfinalize_every_s = 1\nworkers = {}\n",
            data.display().to_string(),
            instance,
            school,
            addr,
            o.workers.max(1)
        );
        for c in &mine {
            let spec = sim
                .scenario
                .camera(c)
                .ok_or_else(|| anyhow!("camera {c} is not in the scenario"))?;
            let urls = match &main_mjpeg {
                Some(m) => format!("detect_url = {:?}\nurl = {:?}", mjpeg.url(c), m.url(c)),
                None => format!("url = {:?}", mjpeg.url(c)),
            };
            toml_text += &format!(
                "\n[[cameras]]\nid = {:?}\n{urls}\ncampus = {:?}\nfps = {}\n",
                c,
                campus_of.get(c).cloned().unwrap_or_default(),
                spec.fps.max(1)
            );
        }
        std::fs::write(&config, toml_text)?;
        procs_cfg.push(ServeSetup {
            addr,
            config,
            log,
            cameras: mine,
        });
    }
    let (addr, config, log) = (
        procs_cfg[0].addr.clone(),
        procs_cfg[0].config.clone(),
        procs_cfg[0].log.clone(),
    );
    let cameras_1 = procs_cfg[0].cameras.clone();
    let mut env = vec![
        (
            "ROLLCALL_CLOCK_OFFSET_MS".to_string(),
            offset_ms.to_string(),
        ),
        ("ROLLCALL_TEMPLATE_KEYS".into(), key_entry.clone()),
        ("ROLLCALL_WEBHOOK_URL".into(), receiver.url()),
        ("ROLLCALL_WEBHOOK_SECRET".into(), WEBHOOK_SECRET.into()),
    ];
    if let Some(url) = db {
        env.push(("DATABASE_URL".into(), url.to_string()));
    }
    if let Some((_, collection)) = &remote {
        env.push(("QDRANT_COLLECTION".into(), collection.clone()));
    }
    // serve k's environment: the shared one and its own node order
    let env_of = |k: usize| -> Vec<(String, String)> {
        let mut e = env.clone();
        if let Some((url, _)) = &remote {
            let nodes = rollcall_gallery::remote::node_urls(url);
            let n = nodes.len().max(1);
            let rotated: Vec<String> = (0..nodes.len())
                .map(|i| nodes[(k + i) % n].clone())
                .collect();
            e.push(("QDRANT_URL".into(), rotated.join(",")));
        }
        e
    };

    // 5. Kills at seeded moments of the day (wall time from the anchor).
    let day = Duration::from_millis((last - anchor.scenario_ms).max(1000) as u64);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(o.seed);
    let mut kill_at: Vec<Duration> = (0..o.cycles)
        .map(|_| day.mul_f64(rng.gen_range(0.0..1.0)))
        .collect();
    kill_at.sort();
    let mut gaps: Vec<Window> = Vec::new();
    let mut kills = Vec::new();
    // Enrollments through serve's API all day (a student's enrollment photo again, every
    // 2 s), so that kills also land while one is in flight.
    let enroller = Enroller::start(addr.clone(), token.clone(), photos);
    let ready_timeout = Duration::from_secs(90);
    // past the last frame, with a second for the stream to end
    let day_over = || anchor.now_ms() > last + 1000;
    for (i, at) in kill_at.iter().enumerate() {
        let mut p = ServeProc::spawn(&config, &env_of(0), &log)?;
        p.wait_ready(&addr, &cameras_1, &day_over, ready_timeout)
            .with_context(|| format!("cycle {i}: see {}", log.display()))?;
        let ready = to_scene(SystemClock.now());
        if let Some(g) = gaps.last_mut() {
            g.1 = ready;
        }
        let due = anchor.at + *at;
        let now = Instant::now();
        let wait = if due > now {
            due - now
        } else {
            // the moment passed while it started: somewhere in its first second
            Duration::from_millis(rng.gen_range(0..1000))
        };
        tokio::time::sleep(wait).await;
        let enrolling = enroller.in_flight();
        p.kill()?;
        // read once the process is gone: its last heartbeat is before this moment
        let killed = to_scene(SystemClock.now());
        gaps.push((killed, killed));
        kills.push(json!({
            "cycle": i,
            "scene_ms": killed,
            "up_ms": killed - ready,
            "during_enrollment": enrolling,
        }));
    }
    // 6. The rest of the day (every serve), then a clean stop.
    let mut running = Vec::new();
    for (k, sc) in procs_cfg.iter().enumerate() {
        running.push(ServeProc::spawn(&sc.config, &env_of(k), &sc.log)?);
    }
    for (p, sc) in running.iter_mut().zip(&procs_cfg) {
        p.wait_ready(&sc.addr, &sc.cameras, &day_over, ready_timeout)
            .with_context(|| format!("last start: see {}", sc.log.display()))?;
    }
    if let Some(g) = gaps.last_mut() {
        g.1 = to_scene(SystemClock.now());
    }
    let end = anchor.due(last) + Duration::from_secs(3);
    if let Some(left) = end.checked_duration_since(Instant::now()) {
        tokio::time::sleep(left).await;
    }
    let enrollments = enroller.stop();
    for p in running {
        p.terminate(Duration::from_secs(60))?;
    }
    mjpeg.stop();
    if let Some(m) = main_mjpeg {
        m.stop();
    }

    // 7. The day finishes: lessons finalised, every due notice delivered.
    let root = open_root(data, db).await?;
    let store = root.school(&school).await?;
    let grace = LessonTiming::default().finalize_grace_minutes * 60_000;
    let day_end = sim
        .scenario
        .lessons
        .iter()
        .map(|l| l.end_ms + grace)
        .max()
        .unwrap_or(last);
    let day_end = DateTime::<Utc>::from_timestamp_millis(day_end.max(last))
        .ok_or_else(|| anyhow!("day end out of range"))?;
    // as run-scenario: whoever is missing at start + late grace is notified, then the lessons
    // are finalised
    let late = LessonTiming::default().late_grace_minutes * 60_000;
    for l in &sim.scenario.lessons {
        if let Some(at) = DateTime::<Utc>::from_timestamp_millis(l.start_ms + late) {
            store.notify_missing(at, chrono::Duration::hours(6)).await?;
        }
    }
    store.finalize(day_end).await?;
    let channels = rollcall_notify::ChannelConfig {
        webhook_url: Some(receiver.url()),
        webhook_secret: Some(WEBHOOK_SECRET.into()),
        ..Default::default()
    }
    .build(store.clock())?;
    let dispatcher = rollcall_notify::Dispatcher::with_seed(
        store.clone(),
        channels,
        Default::default(),
        o.seed,
    )?;
    let now = SystemClock.now().max(day_end) + chrono::Duration::days(1);
    cmd_scenario::dispatch_all(&dispatcher, now).await?;

    // 8. Checks against the ground truth.
    let plan = sim.plan();
    let mut walk: BTreeMap<(String, String), Window> = BTreeMap::new();
    for a in &plan.arrivals {
        if let (Some(lesson), 1) = (&a.lesson, a.pass) {
            walk.entry((a.person.clone(), lesson.clone()))
                .or_insert((a.time_ms - 500, a.closest_ms + 1500));
        }
    }
    let expected: BTreeSet<(String, String)> = plan
        .attendance
        .iter()
        .filter(|a| a.status.arrives())
        .map(|a| (a.student.clone(), a.lesson.clone()))
        .collect();
    let attendance = store.attendance().await?;
    let present: BTreeSet<(String, String)> = attendance
        .iter()
        .filter(|(_, _, s)| s.attended())
        .map(|(s, l, _)| (s.clone(), l.clone()))
        .collect();
    let mut lost = Vec::new();
    let mut missed_in_gaps = Vec::new();
    for e in expected.difference(&present) {
        let w = walk.get(e).copied();
        let in_gap = w.is_some_and(|w| gaps.iter().any(|g| overlaps(*g, w)));
        let item = json!({"student": e.0, "lesson": e.1, "walk_ms": w});
        if in_gap {
            missed_in_gaps.push(item);
        } else {
            lost.push(item);
        }
    }
    let unexpected: Vec<Value> = present
        .difference(&expected)
        .map(|(s, l)| json!({"student": s, "lesson": l}))
        .collect();
    let entries = store.entries(None).await?;
    let mut per_lesson: BTreeMap<(String, String), u32> = BTreeMap::new();
    for e in &entries {
        if e.entry.kind == EntryKind::Deduction {
            if let Some(l) = &e.entry.lesson_id {
                *per_lesson
                    .entry((e.entry.student_id.clone(), l.clone()))
                    .or_default() += 1;
            }
        }
    }
    let duplicate_deductions: u32 = per_lesson.values().map(|n| n.saturating_sub(1)).sum();
    let recorded: BTreeSet<(String, String)> = attendance
        .iter()
        .map(|(s, l, _)| (s.clone(), l.clone()))
        .collect();
    let orphan_deductions = per_lesson.keys().filter(|k| !recorded.contains(*k)).count();
    let parked = store.parked_check_ins().await?.len();
    let alerts = store.alerts(None).await?;
    // gap alerts, `gap:{camera}:{last heartbeat}:{restart}` on serve's (the scene's) clock:
    // every kill must fall inside one of its camera's (one alert may cover several kills: a
    // kill before the restarted process wrote its alert is covered by the next one's)
    let gap_windows: Vec<(String, i64, i64)> = alerts
        .iter()
        .filter_map(|a| {
            let mut it = a.dedup_key.strip_prefix("gap:")?.rsplitn(3, ':');
            let restart = it.next()?.parse().ok()?;
            let since = it.next()?.parse().ok()?;
            Some((it.next()?.to_string(), since, restart))
        })
        .collect();
    let gap_alerts = gap_windows.len();
    let unalerted_kills = kills
        .iter()
        .filter_map(|k| k["scene_ms"].as_i64())
        .filter(|&at| {
            !cameras.iter().all(|c| {
                gap_windows
                    .iter()
                    .any(|(cam, since, restart)| cam == c && *since <= at && at <= *restart)
            })
        })
        .count();
    let gaps_visible = unalerted_kills == 0;

    // notices: webhook-channel rows against what the receiver got
    let rows = store.outbox(None, 1_000_000).await?;
    let webhook_rows: Vec<_> = rows
        .iter()
        .filter(|r| matches!(r.channel.as_str(), "sms" | "wechat" | "webhook"))
        .collect();
    let received = receiver.stop()?;
    let got: BTreeSet<&str> = received.keys().map(String::as_str).collect();
    let lost_notices: Vec<&str> = webhook_rows
        .iter()
        .filter(|r| !got.contains(r.delivery_key.as_str()))
        .map(|r| r.delivery_key.as_str())
        .collect();
    let duplicate_deliveries: u32 = received.values().map(|n| n - 1).sum();
    // one cause (notice id) to one recipient on one channel under two keys
    let mut causes: BTreeMap<(String, String, String), u32> = BTreeMap::new();
    for r in &webhook_rows {
        if got.contains(r.delivery_key.as_str()) {
            *causes
                .entry((
                    r.notice_id.clone(),
                    r.recipient_id.clone(),
                    r.channel.clone(),
                ))
                .or_default() += 1;
        }
    }
    let duplicate_notices: u32 = causes.values().map(|n| n.saturating_sub(1)).sum();
    let unconfigured = rows.len() - webhook_rows.len();

    // the gallery: every enrolled template still there
    let gallery: anyhow::Result<Box<dyn Gallery>> = match remote_gallery {
        Some(g) => Ok(Box::new(g)),
        None => rollcall_gallery::EmbeddedGallery::open(rollcall_gallery::EmbeddedConfig::new(
            data.join("gallery"),
            crate::cmd_gallery::dim_of(&v.open()?),
        ))
        .await
        .map(|g| Box::new(g) as Box<dyn Gallery>)
        .map_err(Into::into),
    };
    // the index holds exactly the sealed (canonical) templates, and every student has one:
    // enrollments cut by a kill were reconciled at the next start
    let sealed: BTreeSet<String> =
        rollcall_domain::privacy::PrivacyStore::sealed(&store, &tenant, None)
            .await?
            .iter()
            .map(|s| s.template_id.to_string())
            .collect();
    let (gallery_ok, gallery_templates) = match gallery {
        Ok(g) => match g.tenant_templates(&tenant).await {
            Ok(ts) => {
                let ids: BTreeSet<String> =
                    ts.iter().map(|t| t.meta.template_id.to_string()).collect();
                let students: BTreeSet<&str> = ts.iter().map(|t| t.meta.student.as_str()).collect();
                let every_student = sim
                    .scenario
                    .file
                    .students
                    .iter()
                    .all(|s| students.contains(s.id.as_str()));
                (ids == sealed && every_student, Some(ids.len()))
            }
            Err(e) => {
                tracing::error!(error = %e, "the gallery does not answer after the run");
                (false, None)
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "the gallery does not open after the kills");
            (false, None)
        }
    };
    let ledger_ok = orphan_deductions == 0 && parked == 0;
    let check_ins = present.intersection(&expected).count();
    let ok = lost.is_empty()
        && duplicate_deductions == 0
        && unexpected.is_empty()
        && lost_notices.is_empty()
        && duplicate_notices == 0
        && gallery_ok
        && ledger_ok
        && gaps_visible;
    // the ledger as comparable lists (the equivalence test compares it with run-scenario's)
    let ledger = cmd_scenario::ledger_dump(&store).await?;
    store.close().await;
    root.close().await;
    let absent_ok = attendance
        .iter()
        .filter(|(_, _, s)| matches!(s, AttendanceStatus::Absent | AttendanceStatus::Excused))
        .count();
    Ok(json!({
        "ok": ok,
        "database": if db.is_some() { "postgres" } else { "sqlite" },
        "gallery": if remote.is_some() { "qdrant-server" } else { "embedded" },
        "serves": o.serves,
        "seed": o.seed,
        "cycles": o.cycles,
        "kills": kills.len(),
        "expected_check_ins": expected.len(),
        "check_ins": check_ins,
        "lost_check_ins": lost.len(),
        "missed_in_gaps": missed_in_gaps.len(),
        "duplicate_deductions": duplicate_deductions,
        "stranger_check_ins": unexpected.len(),
        "expected_notices": webhook_rows.len(),
        "lost_notices": lost_notices.len(),
        "duplicate_notices": duplicate_notices,
        "duplicate_deliveries": duplicate_deliveries,
        "notices_without_a_configured_channel": unconfigured,
        "gallery_ok": gallery_ok,
        "ledger_ok": ledger_ok,
        "gaps_visible": gaps_visible,
        "kills_during_enrollment": kills.iter().filter(|k| k["during_enrollment"] == true).count(),
        "ledger": ledger,
        "details": {
            "lost": lost,
            "missed_in_gaps": missed_in_gaps,
            "unexpected_attendance": unexpected,
            "lost_notice_keys": lost_notices,
            "gap_alerts": gap_alerts,
            "kills_without_a_gap_alert": unalerted_kills,
            "gaps_scene_ms": gaps,
            "kills": kills,
            "absences_recorded": absent_ok,
            "orphan_deductions": orphan_deductions,
            "parked_check_ins": parked,
            "gallery_templates": {
                "enrolled_at_set_up": enrolled_templates,
                "after": gallery_templates,
                "sealed_after": sealed.len(),
            },
            "enrollments_during_the_day": enrollments,
            "day_ms": day.as_millis() as u64,
        },
    }))
}
