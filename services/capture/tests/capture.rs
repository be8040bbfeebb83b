//! End-to-end tests of the capture crate against the real fixture clip, image folders, a refused
//! URL and a live MJPEG-over-HTTP server.

mod common;

use common::*;
use opencv::prelude::*;
use rollcall_capture::*;
use rollcall_domain::clock::SystemClock;
use rollcall_domain::Frame;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn read_all(source: &mut dyn FrameSource) -> Vec<CapturedFrame> {
    source.open().expect("open");
    let mut frames = Vec::new();
    while let Some(f) = source.read().expect("read") {
        frames.push(f);
    }
    source.close();
    frames
}

// ---------------------------------------------------------------------------------------------
// Sources
// ---------------------------------------------------------------------------------------------

#[test]
fn video_file_has_all_frames_at_640x360_in_rgb_order() {
    let clip = clip_path();
    let mut src = OpenCvSource::from_url(clip.to_str().unwrap()).unwrap();
    assert!(!src.is_live());
    let frames = read_all(&mut src);
    assert_eq!(frames.len() as u64, CLIP_FRAMES, "frame count");
    assert!(frames
        .iter()
        .all(|f| (f.frame.width(), f.frame.height()) == (640, 360)));
    let fps = src.native_fps().expect("fps");
    assert!((fps - 29.97).abs() < 0.1, "fps {fps}");
    // Media positions increase and span about 9 s.
    let pos: Vec<Duration> = frames.iter().map(|f| f.position.unwrap()).collect();
    assert!(pos.windows(2).all(|w| w[0] <= w[1]));
    let last = pos.last().unwrap().as_secs_f64();
    assert!((8.5..9.5).contains(&last), "last position {last}");

    // Channel order: the first frame must equal OpenCV's own BGR decode with B and R swapped.
    let mut cap = opencv::videoio::VideoCapture::from_file(
        clip.to_str().unwrap(),
        opencv::videoio::CAP_FFMPEG,
    )
    .unwrap();
    let mut bgr = opencv::core::Mat::default();
    assert!(cap.read(&mut bgr).unwrap());
    let raw = bgr.data_bytes().unwrap();
    let rgb = frames[0].frame.rgb();
    assert_eq!(raw.len(), rgb.len());
    for (b, r) in raw.chunks(3).zip(rgb.chunks(3)).step_by(997) {
        assert_eq!([b[2], b[1], b[0]], [r[0], r[1], r[2]]);
    }
    // And the picture is not blank.
    let distinct: std::collections::HashSet<&[u8]> = rgb.chunks(3).collect();
    assert!(distinct.len() > 100);
}

fn write_image(path: &std::path::Path, w: u32, h: u32, rgb: [u8; 3]) {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
    img.save(path).unwrap();
}

fn image_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    // Deliberately created out of order; mixed formats and sizes.
    write_image(&p.join("003.png"), 32, 24, [0, 0, 255]);
    write_image(&p.join("001.jpg"), 32, 24, [255, 0, 0]);
    write_image(&p.join("002.PNG"), 32, 24, [0, 255, 0]);
    write_image(&p.join("005.jpeg"), 48, 30, [250, 250, 250]);
    std::fs::write(p.join("004.jpg"), b"not a jpeg at all").unwrap();
    std::fs::write(p.join("notes.txt"), b"ignored").unwrap();
    std::fs::create_dir(p.join("sub.png")).unwrap();
    dir
}

#[test]
fn image_folder_plays_sorted_images_and_skips_bad_files() {
    let dir = image_folder();
    let mut src = ImageFolderSource::new(dir.path(), 5.0).unwrap();
    let frames = read_all(&mut src);
    assert_eq!(src.files().len(), 5);
    assert_eq!(src.skipped(), 1, "the corrupt 004.jpg");
    assert_eq!(frames.len(), 4);
    let px = |f: &CapturedFrame| {
        let p = &f.frame.rgb()[..3];
        [p[0], p[1], p[2]]
    };
    let dominant = |p: [u8; 3]| p.iter().enumerate().max_by_key(|x| x.1).unwrap().0;
    assert_eq!(dominant(px(&frames[0])), 0, "001 is red");
    assert_eq!(dominant(px(&frames[1])), 1, "002 is green");
    assert_eq!(px(&frames[2]), [0, 0, 255], "003 is blue (png, exact)");
    assert_eq!(
        (frames[3].frame.width(), frames[3].frame.height()),
        (48, 30)
    );
    // Positions follow the file index at 5 fps (the skipped file keeps its slot).
    let pos: Vec<u128> = frames
        .iter()
        .map(|f| f.position.unwrap().as_millis())
        .collect();
    assert_eq!(pos, vec![0, 200, 400, 800]);

    // Reopening starts over.
    src.open().unwrap();
    assert_eq!(px(&src.read().unwrap().unwrap()), px(&frames[0]));

    // An empty folder does not open.
    let empty = tempfile::tempdir().unwrap();
    let mut src = ImageFolderSource::new(empty.path(), 5.0).unwrap();
    assert!(matches!(src.open(), Err(CaptureError::Open { .. })));
}

#[test]
fn image_folder_camera_is_paced_reports_resolution_change_and_ends() {
    let dir = image_folder();
    let mut cfg = camera("folder-cam", &format!("folder:{}", dir.path().display()));
    cfg.fps = Some(20.0);
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    let cam = spawn_camera(&cfg, Arc::new(tx), Arc::new(SystemClock)).unwrap();
    let frames = cam.frames().clone();
    let consumer = std::thread::spawn(move || {
        let mut got = Vec::new();
        while let Some(f) = frames.recv() {
            got.push(f);
        }
        got
    });
    let counters = cam.join();
    let elapsed = t0.elapsed();
    let got = consumer.join().unwrap();
    assert_eq!(counters.frames_in, 4);
    assert_eq!(
        got.len() as u64 + counters.frames_dropped,
        counters.frames_published
    );
    // 4 frames at 20 fps: at least 3 intervals of 50 ms.
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    let events: Vec<HealthEvent> = rx.try_iter().collect();
    let h = of_camera(&events, "folder-cam");
    assert!(matches!(
        h.first(),
        Some(CameraHealth::Online {
            resolution: Resolution {
                width: 32,
                height: 24
            }
        })
    ));
    assert!(h.contains(&&CameraHealth::ResolutionChanged {
        from: Resolution {
            width: 32,
            height: 24
        },
        to: Resolution {
            width: 48,
            height: 30
        },
    }));
    assert_eq!(h.last(), Some(&&CameraHealth::Ended));
}

#[test]
fn file_camera_delivers_every_frame_and_ends_without_reconnecting() {
    let (tx, rx) = mpsc::channel();
    let mut cfg = camera("file-cam", clip_path().to_str().unwrap());
    cfg.realtime = false;
    let cam = spawn_camera(&cfg, Arc::new(tx), Arc::new(SystemClock)).unwrap();
    let frames = cam.frames().clone();
    let consumer = std::thread::spawn(move || {
        let mut seqs = Vec::new();
        while let Some(f) = frames.recv() {
            seqs.push(f.seq);
        }
        seqs
    });
    let c = cam.join();
    let seqs = consumer.join().unwrap();
    assert_eq!(c.frames_in, CLIP_FRAMES);
    assert_eq!(c.frames_published, CLIP_FRAMES);
    assert_eq!(c.reconnects, 0);
    assert_eq!(seqs.len() as u64 + c.frames_dropped, CLIP_FRAMES);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        seqs.last(),
        Some(&CLIP_FRAMES),
        "the newest frame is never lost"
    );
    let events: Vec<HealthEvent> = rx.try_iter().collect();
    let h = of_camera(&events, "file-cam");
    assert_eq!(
        h,
        vec![
            &CameraHealth::Online {
                resolution: Resolution {
                    width: 640,
                    height: 360
                }
            },
            &CameraHealth::Ended
        ]
    );
}

#[test]
fn file_camera_plays_in_real_time_by_default() {
    let (tx, _rx) = mpsc::channel();
    let cfg = camera("rt-cam", clip_path().to_str().unwrap());
    let cam = spawn_camera(&cfg, Arc::new(tx), Arc::new(SystemClock)).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let c = cam.stop();
    // 29.97 fps for about a second (the first frame is not delayed).
    // (The lower bound leaves room for a loaded machine; the upper bound is the pacing.)
    assert!((10..=33).contains(&c.frames_in), "{c:?}");
}

#[test]
fn looping_file_camera_keeps_going_past_the_end() {
    let (tx, rx) = mpsc::channel();
    let mut cfg = camera("loop-cam", clip_path().to_str().unwrap());
    cfg.loop_source = true;
    cfg.realtime = false;
    let cam = spawn_camera(&cfg, Arc::new(tx), Arc::new(SystemClock)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while cam.counters().frames_in < CLIP_FRAMES + 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!cam.is_finished());
    let c = cam.stop();
    assert!(c.frames_in >= CLIP_FRAMES + 20, "{c:?}");
    let events: Vec<HealthEvent> = rx.try_iter().collect();
    assert!(!events
        .iter()
        .any(|e| matches!(e.health, CameraHealth::Ended | CameraHealth::Offline { .. })));
}

#[test]
fn truncated_video_gives_frames_then_ends_without_panic() {
    let data = std::fs::read(clip_path()).unwrap();
    let fast = faststart(&data);
    assert_eq!(fast.len(), data.len());
    let dir = tempfile::tempdir().unwrap();

    // Sanity: the rewritten file plays whole.
    let whole = dir.path().join("whole.mp4");
    std::fs::write(&whole, &fast).unwrap();
    let mut src = OpenCvSource::from_url(whole.to_str().unwrap()).unwrap();
    assert_eq!(read_all(&mut src).len() as u64, CLIP_FRAMES);

    // The first 40 % of it: some frames, then the end.
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &fast[..fast.len() * 2 / 5]).unwrap();
    let (tx, rx) = mpsc::channel();
    let mut cfg = camera("cut-cam", cut.to_str().unwrap());
    cfg.realtime = false;
    let cam = spawn_camera(&cfg, Arc::new(tx), Arc::new(SystemClock)).unwrap();
    let c = cam.join();
    assert!(
        c.frames_in > 20 && c.frames_in < CLIP_FRAMES,
        "frames {}",
        c.frames_in
    );
    assert_eq!(c.reconnects, 0);
    let events: Vec<HealthEvent> = rx.try_iter().collect();
    let h = of_camera(&events, "cut-cam");
    assert!(
        matches!(h.first(), Some(CameraHealth::Online { .. })),
        "{h:?}"
    );
    assert_eq!(h.last(), Some(&&CameraHealth::Ended), "{h:?}");
}

#[test]
fn truncated_plain_mp4_without_index_is_offline_and_retried() {
    // The fixture keeps its `moov` index at the end, so a plain prefix has no index at all and
    // cannot be opened: the camera reports Offline and keeps retrying, without panicking.
    let data = std::fs::read(clip_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &data[..data.len() * 2 / 5]).unwrap();
    let (tx, rx) = mpsc::channel();
    let mut cfg = camera("noindex-cam", cut.to_str().unwrap());
    cfg.reconnect = BackoffConfig {
        initial_ms: 20,
        max_ms: 80,
    };
    let cam = spawn_camera(&cfg, Arc::new(tx), Arc::new(SystemClock)).unwrap();
    let events = collect_events(&rx, Duration::from_secs(20), |ev| {
        reconnect_delays(&of_camera(ev, "noindex-cam")).len() >= 3
    });
    let c = cam.stop();
    assert_eq!(c.frames_in, 0);
    let h = of_camera(&events, "noindex-cam");
    assert!(
        matches!(h.first(), Some(CameraHealth::Offline { .. })),
        "{h:?}"
    );
    assert!(reconnect_delays(&h).len() >= 3, "{h:?}");
}

// ---------------------------------------------------------------------------------------------
// Failure isolation, backoff, stop
// ---------------------------------------------------------------------------------------------

fn unused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn refused_url_backs_off_and_goes_offline_while_another_camera_keeps_streaming() {
    let (tx, rx) = mpsc::channel();
    let sink: Arc<dyn HealthSink> = Arc::new(tx);
    let mut bad = camera(
        "dead-cam",
        &format!("http://127.0.0.1:{}/x.mjpg", unused_port()),
    );
    bad.reconnect = BackoffConfig {
        initial_ms: 40,
        max_ms: 200,
    };
    let mut good = camera("good-cam", clip_path().to_str().unwrap());
    good.loop_source = true;
    good.fps = Some(60.0);
    let (cams, failed) = spawn_cameras(&[bad, good], sink, Arc::new(SystemClock));
    assert!(failed.is_empty());
    let good_frames = cams[1].frames().clone();
    let consumer = std::thread::spawn(move || {
        let mut n = 0u64;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(2) {
            if good_frames
                .recv_timeout(Duration::from_millis(100))
                .is_some()
            {
                n += 1;
            }
        }
        n
    });
    let events = collect_events(&rx, Duration::from_secs(30), |ev| {
        reconnect_delays(&of_camera(ev, "dead-cam")).len() >= 6
    });
    let good_taken = consumer.join().unwrap();
    let dead = of_camera(&events, "dead-cam");
    assert!(
        matches!(dead.first(), Some(CameraHealth::Offline { .. })),
        "{dead:?}"
    );
    assert_eq!(
        dead.iter()
            .filter(|h| matches!(h, CameraHealth::Offline { .. }))
            .count(),
        1,
        "one Offline per outage: {dead:?}"
    );
    let delays = reconnect_delays(&dead);
    let ms: Vec<u128> = delays.iter().take(6).map(|d| d.1.as_millis()).collect();
    assert_eq!(ms, vec![40, 80, 160, 200, 200, 200], "{delays:?}");
    assert!(delays.iter().enumerate().all(|(i, d)| d.0 == i as u32 + 1));

    let good = of_camera(&events, "good-cam");
    assert!(
        matches!(good.first(), Some(CameraHealth::Online { .. })),
        "{good:?}"
    );
    assert!(!good
        .iter()
        .any(|h| matches!(h, CameraHealth::Offline { .. } | CameraHealth::Stale { .. })));
    // 2 s at ~30 fps (real time, under the 60 fps cap): the healthy camera kept delivering
    // while the other was failing.
    assert!(
        good_taken > 20,
        "good camera delivered only {good_taken} frames"
    );

    let mut it = cams.into_iter();
    let dead_c = it.next().unwrap().stop();
    let good_c = it.next().unwrap().stop();
    assert!(
        dead_c.reconnects >= 5 && dead_c.frames_in == 0,
        "{dead_c:?}"
    );
    assert!(
        good_c.frames_in > 20 && good_c.reconnects == 0,
        "{good_c:?}"
    );
}

#[test]
fn stop_interrupts_a_long_backoff_wait() {
    let (tx, _rx) = mpsc::channel();
    let mut cfg = camera(
        "sleepy",
        &format!("http://127.0.0.1:{}/x.mjpg", unused_port()),
    );
    cfg.reconnect = BackoffConfig {
        initial_ms: 60_000,
        max_ms: 60_000,
    };
    let cam = spawn_camera(&cfg, Arc::new(tx), Arc::new(SystemClock)).unwrap();
    let t0 = Instant::now();
    while cam.state() != CameraState::Offline && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(50));
    let t1 = Instant::now();
    cam.stop();
    assert!(t1.elapsed() < Duration::from_secs(2), "{:?}", t1.elapsed());
}

#[test]
fn invalid_cameras_are_reported_and_disabled_ones_skipped() {
    let (tx, _rx) = mpsc::channel();
    let mut bad = camera("bad", "ftp://nope/x");
    bad.fps = Some(5.0);
    let mut off = camera("off", clip_path().to_str().unwrap());
    off.enabled = false;
    let mut zero = camera("zero", clip_path().to_str().unwrap());
    zero.fps = Some(0.0);
    let (ok, failed) = spawn_cameras(&[bad, off, zero], Arc::new(tx), Arc::new(SystemClock));
    assert!(ok.is_empty());
    let ids: Vec<&str> = failed.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(ids, vec!["bad", "zero"]);
}

// ---------------------------------------------------------------------------------------------
// Latest-frame-wins, fps cap and the stale watchdog, with a synthetic live source
// ---------------------------------------------------------------------------------------------

/// A live source producing a tiny frame every `period`; after `stall_after` frames it stalls
/// once for `stall`.
struct Synthetic {
    period: Duration,
    stall_after: Option<u64>,
    stall: Duration,
    produced: u64,
    open: bool,
}

impl Synthetic {
    fn new(period: Duration) -> Self {
        Self {
            period,
            stall_after: None,
            stall: Duration::ZERO,
            produced: 0,
            open: false,
        }
    }
}

impl FrameSource for Synthetic {
    fn open(&mut self) -> Result<(), CaptureError> {
        self.open = true;
        Ok(())
    }
    fn read(&mut self) -> Result<Option<CapturedFrame>, CaptureError> {
        if !self.open {
            return Err(CaptureError::NotOpen("synthetic".into()));
        }
        if Some(self.produced) == self.stall_after {
            std::thread::sleep(self.stall);
        }
        std::thread::sleep(self.period);
        self.produced += 1;
        let v = (self.produced % 256) as u8;
        Ok(Some(CapturedFrame::now(
            Frame::from_rgb(2, 2, vec![v; 12]).unwrap(),
            None,
            &SystemClock,
        )))
    }
    fn close(&mut self) {
        self.open = false;
    }
    fn is_live(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        "synthetic".into()
    }
}

#[test]
fn slow_consumer_never_stalls_capture_and_drops_are_counted() {
    let (tx, _rx) = mpsc::channel();
    let cfg = camera("fast", "0");
    let cam = spawn_source(
        &cfg,
        Box::new(Synthetic::new(Duration::from_millis(1))),
        Arc::new(tx),
        Arc::new(SystemClock),
    )
    .unwrap();
    let frames = cam.frames().clone();
    let t0 = Instant::now();
    let mut taken = Vec::new();
    while t0.elapsed() < Duration::from_millis(600) {
        if let Some(f) = frames.recv_timeout(Duration::from_millis(100)) {
            taken.push(f.seq);
        }
        std::thread::sleep(Duration::from_millis(50)); // the slow consumer
    }
    let c = cam.stop();
    let leftover = u64::from(frames.try_take().is_some());
    assert!(c.frames_in > 60, "capture was stalled: {c:?}");
    assert!(taken.len() < 20, "{}", taken.len());
    assert!(c.frames_dropped > 40, "{c:?}");
    assert_eq!(c.frames_published, c.frames_in);
    assert_eq!(
        taken.len() as u64 + c.frames_dropped + leftover,
        c.frames_published
    );
    // Each take returns the newest frame: big gaps between consecutive sequence numbers.
    assert!(taken.windows(2).all(|w| w[1] > w[0] + 5), "{taken:?}");
}

#[test]
fn fps_cap_skips_live_frames_beyond_the_cap() {
    let (tx, _rx) = mpsc::channel();
    let mut cfg = camera("capped", "0");
    cfg.fps = Some(20.0);
    let cam = spawn_source(
        &cfg,
        Box::new(Synthetic::new(Duration::from_millis(2))),
        Arc::new(tx),
        Arc::new(SystemClock),
    )
    .unwrap();
    let frames = cam.frames().clone();
    let t0 = Instant::now();
    let mut taken = 0u64;
    while t0.elapsed() < Duration::from_millis(1000) {
        if frames.recv_timeout(Duration::from_millis(20)).is_some() {
            taken += 1;
        }
    }
    let c = cam.stop();
    // ~1 s at a 20 fps cap from a ~400 fps source.
    // (The lower bounds leave room for a loaded machine; the upper bound is the cap.)
    assert!((10..=23).contains(&c.frames_published), "{c:?}");
    assert!(taken >= 8, "{taken}");
    assert_eq!(c.frames_skipped + c.frames_published, c.frames_in);
    assert!(c.frames_skipped > 100, "{c:?}");
}

#[test]
fn watchdog_reports_stale_then_online_when_frames_resume() {
    let (tx, rx) = mpsc::channel();
    let mut cfg = camera("stally", "0");
    cfg.stale_timeout_ms = 150;
    let mut src = Synthetic::new(Duration::from_millis(5));
    src.stall_after = Some(10);
    src.stall = Duration::from_millis(1000);
    let cam = spawn_source(&cfg, Box::new(src), Arc::new(tx), Arc::new(SystemClock)).unwrap();
    let events = collect_events(&rx, Duration::from_secs(5), |ev| ev.len() >= 3);
    let c = cam.stop();
    let h = of_camera(&events, "stally");
    assert!(matches!(h[0], CameraHealth::Online { .. }), "{h:?}");
    assert!(matches!(h[1], CameraHealth::Stale { .. }), "{h:?}");
    assert!(matches!(h[2], CameraHealth::Online { .. }), "{h:?}");
    // `since` is the last frame before the stall, about 150 ms before the report.
    let stale_ev = events
        .iter()
        .find(|e| matches!(e.health, CameraHealth::Stale { .. }));
    if let Some(HealthEvent {
        at,
        health: CameraHealth::Stale { since },
        ..
    }) = stale_ev
    {
        let gap = (*at - *since).num_milliseconds();
        assert!((140..1000).contains(&gap), "gap {gap} ms");
    }
    assert!(c.frames_in > 10);
}

// ---------------------------------------------------------------------------------------------
// MJPEG over HTTP
// ---------------------------------------------------------------------------------------------

struct MjpegServer {
    port: u16,
    kill: Arc<AtomicBool>,
    stall: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl MjpegServer {
    /// Serves `multipart/x-mixed-replace` JPEG parts (320x240, solid RGB (200, 40, 40)) at
    /// about `fps` to every client until killed.
    fn start(fps: u32) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let kill = Arc::new(AtomicBool::new(false));
        let stall = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&image::RgbImage::from_pixel(
                320,
                240,
                image::Rgb([200, 40, 40]),
            ))
            .unwrap();
        let jpeg = Arc::new(jpeg);
        let (k, st, s) = (kill.clone(), stall.clone(), served.clone());
        let thread = std::thread::spawn(move || {
            let mut clients: Vec<JoinHandle<()>> = Vec::new();
            while !k.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (k, st, s, jpeg) = (k.clone(), st.clone(), s.clone(), jpeg.clone());
                        clients.push(std::thread::spawn(move || {
                            let _ = serve_client(stream, &jpeg, fps, &k, &st, &s);
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            drop(listener); // connections are refused from now on
            for c in clients {
                let _ = c.join();
            }
        });
        Self {
            port,
            kill,
            stall,
            served,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/cam.mjpg", self.port)
    }

    /// Closes every connection mid-stream and stops listening.
    fn kill(&mut self) {
        self.kill.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for MjpegServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn serve_client(
    stream: TcpStream,
    jpeg: &[u8],
    fps: u32,
    kill: &AtomicBool,
    stall: &AtomicBool,
    served: &AtomicU64,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut w = stream;
    w.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\
          Cache-Control: no-cache\r\nConnection: close\r\n\r\n",
    )?;
    let period = Duration::from_secs_f64(1.0 / f64::from(fps));
    while !kill.load(Ordering::SeqCst) {
        if stall.load(Ordering::SeqCst) {
            // Keep the connection open but send nothing.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        write!(
            w,
            "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            jpeg.len()
        )?;
        w.write_all(jpeg)?;
        w.write_all(b"\r\n")?;
        served.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(period);
    }
    let _ = w.shutdown(Shutdown::Both);
    Ok(())
}

#[test]
fn mjpeg_http_stream_is_read_then_reconnects_when_the_server_dies() {
    let mut server = MjpegServer::start(25);
    let (tx, rx) = mpsc::channel();
    let mut cfg = camera("mjpeg-cam", &server.url());
    cfg.stale_timeout_ms = 1000;
    cfg.reconnect = BackoffConfig {
        initial_ms: 50,
        max_ms: 400,
    };
    let cam = spawn_camera(&cfg, Arc::new(tx), Arc::new(SystemClock)).unwrap();
    let frames = cam.frames().clone();
    let mut got = Vec::new();
    let t0 = Instant::now();
    while got.len() < 15 && t0.elapsed() < Duration::from_secs(20) {
        if let Some(f) = frames.recv_timeout(Duration::from_millis(200)) {
            got.push(f);
        }
    }
    assert!(
        got.len() >= 15,
        "only {} MJPEG frames (served {})",
        got.len(),
        server.served.load(Ordering::SeqCst)
    );
    let f = &got[0].frame;
    assert_eq!((f.width(), f.height()), (320, 240));
    let px = &f.rgb()[(120 * 320 + 160) * 3..][..3];
    assert!(
        px[0].abs_diff(200) < 12 && px[1].abs_diff(40) < 12 && px[2].abs_diff(40) < 12,
        "pixel {px:?} is not RGB (200, 40, 40)"
    );

    server.kill();
    let events = collect_events(&rx, Duration::from_secs(20), |ev| {
        reconnect_delays(&of_camera(ev, "mjpeg-cam")).len() >= 3
    });
    let c = cam.stop();
    let h = of_camera(&events, "mjpeg-cam");
    let online = h
        .iter()
        .position(|h| matches!(h, CameraHealth::Online { .. }))
        .expect("Online");
    let offline = h
        .iter()
        .position(|h| matches!(h, CameraHealth::Offline { .. }))
        .expect("Offline after the server died");
    assert!(online < offline, "{h:?}");
    let delays = reconnect_delays(&h);
    assert!(delays.len() >= 3, "{h:?}");
    assert!(delays
        .windows(2)
        .all(|w| w[1].1 >= w[0].1 && w[1].1 <= Duration::from_millis(400)));
    assert!(c.reconnects >= 2, "{c:?}");
    assert!(c.frames_in >= 15, "{c:?}");
}

#[test]
fn stalled_mjpeg_stream_is_reported_stale_then_offline() {
    let mut server = MjpegServer::start(25);
    let (tx, rx) = mpsc::channel();
    let mut cfg = camera("stalled-cam", &server.url());
    cfg.stale_timeout_ms = 400;
    let cam = spawn_camera(&cfg, Arc::new(tx), Arc::new(SystemClock)).unwrap();
    let t0 = Instant::now();
    while cam.counters().frames_in < 5 && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(cam.counters().frames_in >= 5, "{:?}", cam.counters());
    server.stall.store(true, Ordering::SeqCst);
    let stalled_at = Instant::now();
    let events = collect_events(&rx, Duration::from_secs(20), |ev| {
        of_camera(ev, "stalled-cam")
            .iter()
            .any(|h| matches!(h, CameraHealth::Offline { .. }))
    });
    let offline_after = stalled_at.elapsed();
    server.kill();
    cam.stop();
    let h = of_camera(&events, "stalled-cam");
    let stale = h
        .iter()
        .position(|h| matches!(h, CameraHealth::Stale { .. }))
        .unwrap_or_else(|| panic!("no Stale: {h:?}"));
    let offline = h
        .iter()
        .position(|h| matches!(h, CameraHealth::Offline { .. }))
        .unwrap_or_else(|| panic!("no Offline: {h:?}"));
    assert!(stale < offline, "{h:?}");
    // The blocked OpenCV read gives up after the read timeout (twice the stale timeout).
    assert!(
        offline_after >= Duration::from_millis(400) && offline_after < Duration::from_secs(5),
        "{offline_after:?}"
    );
}

/// A clock stuck at one instant: what the capture stamps must come from the injected clock.
struct StuckClock(chrono::DateTime<chrono::Utc>);

impl rollcall_domain::clock::Clock for StuckClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0
    }
}

#[test]
fn frames_and_health_events_take_their_time_from_the_injected_clock() {
    let dir = image_folder();
    let cfg = camera("clocked", &format!("folder:{}", dir.path().display()));
    let at = chrono::DateTime::parse_from_rfc3339("2031-02-03T04:05:06Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let (tx, rx) = mpsc::channel();
    let cam = spawn_camera(&cfg, Arc::new(tx), Arc::new(StuckClock(at))).unwrap();
    let frames = cam.frames().clone();
    let consumer = std::thread::spawn(move || {
        let mut got = Vec::new();
        while let Some(f) = frames.recv() {
            got.push(f.captured_at);
        }
        got
    });
    cam.join();
    let stamps = consumer.join().unwrap();
    assert!(!stamps.is_empty());
    assert!(stamps.iter().all(|t| *t == at), "{stamps:?}");
    let events: Vec<HealthEvent> = rx.try_iter().collect();
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e.at == at), "{events:?}");
}
