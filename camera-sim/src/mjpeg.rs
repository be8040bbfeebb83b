//! Live MJPEG over HTTP (`multipart/x-mixed-replace`), one URL per camera:
//! `http://ADDR/camera/<id>.mjpg`. Plain `std::net` with one thread per client; every client gets
//! its own stream from the first frame. `GET /` lists the cameras, `GET /truth.json` serves the
//! arrival and attendance ground truth. Each part carries `X-Timestamp-Ms`, `X-Frame-Index` and
//! `X-Rollcall-Truth` (the frame's [`crate::TruthFace`]s as compact JSON) headers.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::output::encode_jpeg;
use crate::render::{Renderer, StreamOptions};

/// Boundary of the multipart stream.
pub const BOUNDARY: &str = "rollcallframe";

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// How frames are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// Pace frames at the camera's fps (one frame period per frame, so empty stretches between
    /// appearances are skipped unless `stream.continuous`); otherwise as fast as the client reads.
    pub realtime: bool,
    /// Start again from the first frame at the end (otherwise the response ends).
    pub loop_forever: bool,
    /// Which frames.
    pub stream: StreamOptions,
    /// JPEG quality (default: the scenario's).
    pub jpeg_quality: Option<u8>,
    /// Live, like a real camera: the scene's time runs with the wall clock from this anchor,
    /// every client gets the frame of the current moment (a client that connects late or
    /// reconnects misses what happened meanwhile), frames are sent at their due time and
    /// frames already late by more than a frame period are skipped (not rendered). The
    /// stream is continuous from the anchor to the camera's last frame. Overrides
    /// `realtime`, `loop_forever` and `stream`.
    pub live: Option<LiveAnchor>,
}

/// Scene time `scenario_ms` happens at `at` (see [`ServeOptions::live`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveAnchor {
    pub at: Instant,
    pub scenario_ms: i64,
}

impl LiveAnchor {
    /// The scene time now.
    pub fn now_ms(&self) -> i64 {
        self.scenario_ms + self.at.elapsed().as_millis() as i64
    }
    /// When scene time `t_ms` is due.
    pub fn due(&self, t_ms: i64) -> Instant {
        self.at + Duration::from_millis((t_ms - self.scenario_ms).max(0) as u64)
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            realtime: true,
            loop_forever: false,
            stream: StreamOptions::default(),
            jpeg_quality: None,
            live: None,
        }
    }
}

/// A running MJPEG server. [`MjpegServer::stop`] (or dropping it) stops accepting, ends every
/// client stream and joins the threads.
pub struct MjpegServer {
    addr: SocketAddr,
    cameras: Vec<String>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    clients: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for MjpegServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MjpegServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl MjpegServer {
    /// Listens on `addr` (e.g. `"127.0.0.1:0"` for a free port) and serves every camera of the
    /// renderer.
    pub fn start(
        renderer: Renderer,
        addr: impl ToSocketAddrs + std::fmt::Debug,
        opts: ServeOptions,
    ) -> Result<MjpegServer, ServeError> {
        let name = format!("{addr:?}");
        let listener = TcpListener::bind(addr).map_err(|source| ServeError::Bind {
            addr: name.clone(),
            source,
        })?;
        let local = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: name.clone(),
            source,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| ServeError::Bind { addr: name, source })?;
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::new(Mutex::new(Vec::new()));
        let cameras = renderer.camera_ids();
        let accept = {
            let stop = stop.clone();
            let clients = clients.clone();
            std::thread::Builder::new()
                .name("mjpeg-accept".into())
                .spawn(move || accept_loop(listener, renderer, opts, stop, clients))
                .ok()
        };
        Ok(MjpegServer {
            addr: local,
            cameras,
            stop,
            accept,
            clients,
        })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// URL of a camera's stream.
    pub fn url(&self, camera: &str) -> String {
        format!("http://{}/camera/{camera}.mjpg", self.addr)
    }

    /// URLs of every camera, in scenario order.
    pub fn urls(&self) -> Vec<(String, String)> {
        self.cameras
            .iter()
            .map(|c| (c.clone(), self.url(c)))
            .collect()
    }

    /// Stops accepting, ends the client streams and joins every thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        let handles: Vec<JoinHandle<()>> = match self.clients.lock() {
            Ok(mut v) => v.drain(..).collect(),
            Err(p) => p.into_inner().drain(..).collect(),
        };
        for h in handles {
            let _ = h.join();
        }
    }
}

impl Drop for MjpegServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(
    listener: TcpListener,
    renderer: Renderer,
    opts: ServeOptions,
    stop: Arc<AtomicBool>,
    clients: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((sock, _)) => {
                let r = renderer.clone();
                let s = stop.clone();
                let h = std::thread::Builder::new()
                    .name("mjpeg-client".into())
                    .spawn(move || {
                        let _ = handle_client(sock, &r, opts, &s);
                    });
                if let (Ok(h), Ok(mut v)) = (h, clients.lock()) {
                    // Reap finished clients so the list does not grow without bound.
                    let (done, running): (Vec<_>, Vec<_>) =
                        v.drain(..).partition(|h: &JoinHandle<()>| h.is_finished());
                    for d in done {
                        let _ = d.join();
                    }
                    *v = running;
                    v.push(h);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// One part of the multipart stream.
fn write_part(
    sock: &mut TcpStream,
    jpg: &[u8],
    t: i64,
    index: usize,
    truth: &[crate::TruthFace],
) -> std::io::Result<()> {
    let truth_json = serde_json::to_string(truth).unwrap_or_else(|_| "[]".into());
    write!(
        sock,
        "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp-Ms: {t}\r\nX-Frame-Index: {index}\r\nX-Rollcall-Truth: {truth_json}\r\n\r\n",
        jpg.len()
    )?;
    sock.write_all(jpg)?;
    sock.write_all(b"\r\n")?;
    sock.flush()
}

/// [`ServeOptions::live`]: the frames of the current moment, each at its due time.
fn live_stream(
    mut sock: TcpStream,
    renderer: &Renderer,
    camera: &str,
    anchor: LiveAnchor,
    period: Duration,
    quality: u8,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let times = renderer
        .frame_times(
            camera,
            StreamOptions {
                continuous: true,
                from_ms: Some(anchor.now_ms()),
                to_ms: None,
            },
        )
        .unwrap_or_default();
    for (index, t) in times.into_iter().enumerate() {
        let due = anchor.due(t);
        if Instant::now() > due + period {
            continue; // late: a live camera does not send the past
        }
        while Instant::now() < due {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let left = due.saturating_duration_since(Instant::now());
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let Ok((frame, truth)) = renderer.render_frame(camera, t) else {
            continue;
        };
        let Ok(jpg) = encode_jpeg(&frame, quality) else {
            continue;
        };
        write_part(&mut sock, &jpg, t, index, &truth)?;
    }
    write!(sock, "--{BOUNDARY}--\r\n")?;
    sock.flush()
}

fn respond(sock: &mut TcpStream, status: &str, ctype: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        sock,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    sock.write_all(body)?;
    sock.flush()
}

fn handle_client(
    sock: TcpStream,
    renderer: &Renderer,
    opts: ServeOptions,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    sock.set_write_timeout(Some(Duration::from_secs(2)))?;
    let _ = sock.set_nodelay(true);
    let mut reader = BufReader::new(sock.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("").to_string();
    // Skip the headers.
    loop {
        let mut h = String::new();
        let n = reader.read_line(&mut h)?;
        if n == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let mut sock = sock;
    if method != "GET" {
        return respond(
            &mut sock,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only\n",
        );
    }
    let path = target.split('?').next().unwrap_or("");
    if path == "/" || path == "/index.html" {
        let mut body = String::from("<!doctype html><title>rollcall camera-sim</title><ul>\n");
        for id in renderer.camera_ids() {
            body.push_str(&format!(
                "<li><a href=\"/camera/{id}.mjpg\">{id}</a></li>\n"
            ));
        }
        body.push_str("</ul><p><a href=\"/truth.json\">truth.json</a></p>\n");
        return respond(
            &mut sock,
            "200 OK",
            "text/html; charset=utf-8",
            body.as_bytes(),
        );
    }
    if path == "/truth.json" {
        let plan = renderer.plan();
        let v = serde_json::json!({
            "seed": plan.seed,
            "arrivals": plan.arrivals,
            "attendance": plan.attendance,
        });
        let body = serde_json::to_vec_pretty(&v).unwrap_or_default();
        return respond(&mut sock, "200 OK", "application/json", &body);
    }
    let camera = path
        .strip_prefix("/camera/")
        .and_then(|p| p.strip_suffix(".mjpg"))
        .map(str::to_string);
    let Some(camera) = camera.filter(|c| renderer.camera_ids().contains(c)) else {
        return respond(
            &mut sock,
            "404 Not Found",
            "text/plain",
            b"no such camera\n",
        );
    };
    let fps = renderer
        .plan()
        .camera(&camera)
        .map(|c| c.spec.fps.max(1))
        .unwrap_or(10);
    let quality = opts.jpeg_quality.unwrap_or(renderer.plan().jpeg_quality);
    write!(
        sock,
        "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary={BOUNDARY}\r\nCache-Control: no-cache, no-store\r\nPragma: no-cache\r\nConnection: close\r\n\r\n"
    )?;
    let period = Duration::from_secs_f64(1.0 / f64::from(fps));
    if let Some(anchor) = opts.live {
        return live_stream(sock, renderer, &camera, anchor, period, quality, stop);
    }
    let started = Instant::now();
    let mut sent = 0u64;
    while let Ok(stream) = renderer.stream(&camera, opts.stream) {
        if stream.len() == 0 {
            break;
        }
        for (index, (t, frame, truth)) in stream.enumerate() {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            if opts.realtime {
                let due = started + period.mul_f64(sent as f64);
                while Instant::now() < due {
                    if stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    let left = due.saturating_duration_since(Instant::now());
                    std::thread::sleep(left.min(Duration::from_millis(20)));
                }
            }
            let jpg = match encode_jpeg(&frame, quality) {
                Ok(j) => j,
                Err(_) => continue,
            };
            write_part(&mut sock, &jpg, t, index, &truth)?;
            sent += 1;
        }
        if !opts.loop_forever {
            break;
        }
    }
    write!(sock, "--{BOUNDARY}--\r\n")?;
    sock.flush()
}
