//! The inference stage for live streams: a pool of worker threads (one per core by default),
//! each with its own [`Analyzer`] (for faces: its own ONNX sessions running detect → quality
//! gate → align → embed, [`crate::FaceAnalyzer`]).
//!
//! Cameras hand frames in through a short queue each ([`PoolOptions::queue_depth`], one frame
//! for live cameras: latest frame wins, so a slow pool drops old frames, counted per camera,
//! and never stalls capture; a file source uses [`InferencePool::submit_wait`] and a deeper
//! queue so that no frame is dropped). A worker takes waiting frames of up to `max_batch` at
//! once, round robin over the cameras so none starves, and analyses them in one call (for
//! faces: two frames per detector call, all faces in one embedder call). Successive frames of
//! **one** camera may be analysed by several workers at the same time
//! ([`PoolOptions::per_camera`], by default every worker), so one busy camera uses every core;
//! each frame gets a sequence number when it is taken and results are **released in capture
//! order per camera** (a result that finishes early waits for the earlier frames), which the
//! tracker needs. The output channel is bounded: when the consumer falls behind, workers wait
//! on it, frames pile up in the queues and are replaced there (counted as dropped), so memory
//! stays bounded at `queue_depth` waiting frames per camera, `per_camera` in flight, plus the
//! channel. An analyzer that panics costs its frames (reported as errors), not the pool.

use chrono::{DateTime, Utc};
use rollcall_domain::Frame;
use std::collections::{BTreeMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::mpsc;

/// What a worker runs on the frames it takes: one result per frame, in the order given, or one
/// error for the whole call (reported on each of its frames).
pub trait Analyzer: Send + 'static {
    type Output: Send + 'static;
    fn analyze(&mut self, frames: &[&Job]) -> Result<Vec<Self::Output>, String>;
}

/// A frame waiting for inference.
pub struct Job {
    pub frame: Frame,
    /// For a camera with two streams: the main stream's frame of the same instant, from which
    /// face crops are cut (faces are found in `frame`, the substream).
    pub main: Option<Frame>,
    /// Event time of the frame.
    pub at: DateTime<Utc>,
    /// When it was captured (latency origin).
    pub captured: Instant,
}

/// A frame after inference.
pub struct Analyzed<O> {
    pub camera: usize,
    pub at: DateTime<Utc>,
    pub captured: Instant,
    /// The analyzer's output, or its error (per frame).
    pub result: Result<O, String>,
}

/// How the pool shares its workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// Frames one worker call may take (from any cameras).
    pub max_batch: usize,
    /// Frames of one camera in flight at once (1: one camera never uses more than one worker).
    pub per_camera: usize,
    /// Frames waiting per camera; a new frame beyond it replaces the oldest waiting one.
    pub queue_depth: usize,
}

impl PoolOptions {
    /// Live cameras: the newest frame only, every worker may help a busy camera.
    pub fn live(workers: usize, max_batch: usize) -> Self {
        PoolOptions {
            max_batch: max_batch.max(1),
            per_camera: workers.max(1),
            queue_depth: 1,
        }
    }
}

#[derive(Default)]
struct State {
    queues: Vec<VecDeque<Job>>,
    in_flight: Vec<usize>,
    /// Sequence number the camera's next taken frame gets.
    next_seq: Vec<u64>,
    dropped: Vec<u64>,
    processed: Vec<u64>,
    next: usize,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
    opts: PoolOptions,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // a worker that panicked cannot leave the state half-changed: every change is one
        // assignment under the lock
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Finished frames waiting for an earlier frame of their camera, and each camera's next
/// sequence number to release. Sends happen under this lock, so releases never interleave.
struct Release<O> {
    done: Vec<BTreeMap<u64, Analyzed<O>>>,
    next: Vec<u64>,
}

/// Counters of one camera.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounters {
    pub processed: u64,
    /// Frames replaced in the queue before a worker took them.
    pub dropped: u64,
}

pub struct InferencePool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl InferencePool {
    /// Starts one worker thread per analyzer, for `cameras` live cameras
    /// ([`PoolOptions::live`]); each worker takes the frames of up to `max_batch` cameras per
    /// call. Results go to `out`; the pool stops when `out` is closed or
    /// [`InferencePool::stop`] is called.
    pub fn start<A: Analyzer>(
        analyzers: Vec<A>,
        cameras: usize,
        max_batch: usize,
        out: mpsc::Sender<Analyzed<A::Output>>,
    ) -> std::io::Result<InferencePool> {
        let opts = PoolOptions::live(analyzers.len(), max_batch);
        Self::start_with(analyzers, cameras, opts, out)
    }

    /// [`InferencePool::start`] with explicit options.
    pub fn start_with<A: Analyzer>(
        analyzers: Vec<A>,
        cameras: usize,
        opts: PoolOptions,
        out: mpsc::Sender<Analyzed<A::Output>>,
    ) -> std::io::Result<InferencePool> {
        let opts = PoolOptions {
            max_batch: opts.max_batch.max(1),
            per_camera: opts.per_camera.max(1),
            queue_depth: opts.queue_depth.max(1),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queues: (0..cameras).map(|_| VecDeque::new()).collect(),
                in_flight: vec![0; cameras],
                next_seq: vec![0; cameras],
                dropped: vec![0; cameras],
                processed: vec![0; cameras],
                ..Default::default()
            }),
            cv: Condvar::new(),
            opts,
        });
        let release = Arc::new(Mutex::new(Release {
            done: (0..cameras).map(|_| BTreeMap::new()).collect(),
            next: vec![0; cameras],
        }));
        let mut handles = Vec::new();
        for (i, a) in analyzers.into_iter().enumerate() {
            let (sh, tx, rel) = (shared.clone(), out.clone(), release.clone());
            let h = std::thread::Builder::new()
                .name(format!("inference-{i}"))
                .spawn(move || worker(a, sh, rel, tx));
            match h {
                Ok(h) => handles.push(h),
                Err(e) => {
                    let pool = InferencePool {
                        shared,
                        workers: handles,
                    };
                    pool.stop();
                    return Err(e);
                }
            }
        }
        Ok(InferencePool {
            shared,
            workers: handles,
        })
    }

    /// Hands a frame of `camera` in; when the camera's queue is full, its oldest waiting frame
    /// is replaced (and counted as dropped). Never blocks on inference. Returns `false` for an
    /// unknown camera or a stopped pool.
    pub fn submit(&self, camera: usize, job: Job) -> bool {
        let mut s = self.shared.lock();
        if s.closed || camera >= s.queues.len() {
            return false;
        }
        let depth = self.shared.opts.queue_depth;
        s.queues[camera].push_back(job);
        while s.queues[camera].len() > depth {
            s.queues[camera].pop_front();
            s.dropped[camera] += 1;
        }
        drop(s);
        self.shared.cv.notify_all();
        true
    }

    /// Hands a frame of `camera` in, waiting while the camera's queue is full: nothing is
    /// dropped (for files, which can be read faster than analysed). Returns `false` for an
    /// unknown camera or a stopped pool.
    pub fn submit_wait(&self, camera: usize, job: Job) -> bool {
        let mut s = self.shared.lock();
        loop {
            if s.closed || camera >= s.queues.len() {
                return false;
            }
            if s.queues[camera].len() < self.shared.opts.queue_depth {
                break;
            }
            s = self.shared.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.queues[camera].push_back(job);
        drop(s);
        self.shared.cv.notify_all();
        true
    }

    pub fn counters(&self, camera: usize) -> PoolCounters {
        let s = self.shared.lock();
        PoolCounters {
            processed: s.processed.get(camera).copied().unwrap_or(0),
            dropped: s.dropped.get(camera).copied().unwrap_or(0),
        }
    }

    /// Frames waiting in the queues (at most `queue_depth` per camera).
    pub fn waiting(&self) -> usize {
        self.shared.lock().queues.iter().map(|q| q.len()).sum()
    }

    /// Frames taken by workers and not yet released.
    pub fn in_flight(&self) -> usize {
        self.shared.lock().in_flight.iter().sum()
    }

    /// Stops taking frames; workers finish the frames in flight (waiting ones are dropped) and
    /// exit. Joins them.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// [`InferencePool::stop`] through a reference (the pool refuses frames afterwards).
    pub fn shutdown(&mut self) {
        self.shared.lock().closed = true;
        self.shared.cv.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for InferencePool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.cv.notify_all();
    }
}

/// Takes waiting frames for one call: first at most one per camera (round robin from
/// `s.next`), then more of the same cameras while the batch has room, each camera within its
/// `per_camera` limit. Frames leave a queue from its front, so sequence numbers follow capture
/// order.
fn take(s: &mut State, opts: &PoolOptions) -> Vec<(usize, u64, Job)> {
    let n = s.queues.len();
    let mut taken = Vec::new();
    if n == 0 {
        return taken;
    }
    let start = s.next;
    for round in 0..opts.max_batch {
        let before = taken.len();
        for k in 0..n {
            let c = (start + k) % n;
            if taken.len() == opts.max_batch {
                break;
            }
            if s.in_flight[c] >= opts.per_camera {
                continue;
            }
            if let Some(j) = s.queues[c].pop_front() {
                let seq = s.next_seq[c];
                s.next_seq[c] += 1;
                s.in_flight[c] += 1;
                taken.push((c, seq, j));
                if round == 0 {
                    s.next = (c + 1) % n;
                }
            }
        }
        if taken.len() == before || taken.len() == opts.max_batch {
            break;
        }
    }
    taken
}

fn worker<A: Analyzer>(
    mut a: A,
    shared: Arc<Shared>,
    release: Arc<Mutex<Release<A::Output>>>,
    out: mpsc::Sender<Analyzed<A::Output>>,
) {
    loop {
        let taken = {
            let mut s = shared.lock();
            loop {
                if s.closed {
                    return;
                }
                let t = take(&mut s, &shared.opts);
                if !t.is_empty() {
                    break t;
                }
                s = shared.cv.wait(s).unwrap_or_else(|p| p.into_inner());
            }
        };
        // the queues have room again (a waiting submit_wait may go on)
        shared.cv.notify_all();
        let frames: Vec<&Job> = taken.iter().map(|(_, _, j)| j).collect();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| a.analyze(&frames)))
            .unwrap_or_else(|_| Err("the analyzer panicked".to_string()));
        let mut results: Vec<(u64, Analyzed<A::Output>)> = Vec::with_capacity(taken.len());
        match result {
            Ok(per_frame) if per_frame.len() == taken.len() => {
                for ((c, seq, j), o) in taken.iter().zip(per_frame) {
                    results.push((
                        *seq,
                        Analyzed {
                            camera: *c,
                            at: j.at,
                            captured: j.captured,
                            result: Ok(o),
                        },
                    ));
                }
            }
            other => {
                let e = match other {
                    Err(e) => e,
                    Ok(v) => format!(
                        "the analyzer returned {} results for {} frames",
                        v.len(),
                        taken.len()
                    ),
                };
                for (c, seq, j) in &taken {
                    results.push((
                        *seq,
                        Analyzed {
                            camera: *c,
                            at: j.at,
                            captured: j.captured,
                            result: Err(e.clone()),
                        },
                    ));
                }
            }
        }
        // Release in capture order per camera: park the results, then send every result whose
        // predecessors have all been sent (possibly other workers' parked ones).
        let mut closed = false;
        let released = {
            let mut rel = release.lock().unwrap_or_else(|p| p.into_inner());
            let mut released = vec![0usize; rel.next.len()];
            for (seq, r) in results {
                let c = r.camera;
                rel.done[c].insert(seq, r);
            }
            let mut touched: Vec<usize> = taken.iter().map(|(c, _, _)| *c).collect();
            touched.sort_unstable();
            touched.dedup();
            for c in touched {
                loop {
                    let want = rel.next[c];
                    let Some(r) = rel.done[c].remove(&want) else {
                        break;
                    };
                    rel.next[c] += 1;
                    released[c] += 1;
                    if !closed && out.blocking_send(r).is_err() {
                        closed = true;
                    }
                }
            }
            released
        };
        let mut s = shared.lock();
        for (c, n) in released.iter().enumerate() {
            s.in_flight[c] -= n;
            s.processed[c] += *n as u64;
        }
        if closed {
            s.closed = true;
        }
        drop(s);
        shared.cv.notify_all();
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The pool's ordering, dropping and back-pressure with a fake analyzer (no models).
    use super::*;
    use std::time::Duration;

    /// Reads the frame's first byte (its sequence number) after sleeping `ms` per call.
    struct Fake {
        ms: u64,
        fail_on: Option<u8>,
    }

    impl Analyzer for Fake {
        type Output = u8;
        fn analyze(&mut self, frames: &[&Job]) -> Result<Vec<u8>, String> {
            std::thread::sleep(Duration::from_millis(self.ms));
            let v: Vec<u8> = frames.iter().map(|j| j.frame.rgb()[0]).collect();
            if self.fail_on.is_some_and(|x| v.contains(&x)) {
                return Err("injected failure".into());
            }
            Ok(v)
        }
    }

    fn job(i: u8, t0: DateTime<Utc>) -> Job {
        Job {
            frame: Frame::from_rgb(2, 2, vec![i; 12]).expect("valid frame"),
            main: None,
            at: t0 + chrono::Duration::milliseconds(i64::from(i)),
            captured: Instant::now(),
        }
    }

    /// Bursts from three cameras into two workers: frames are replaced and several are in
    /// flight at once, yet each camera's results leave the pool in capture order, each camera's
    /// last frame is never lost, and every frame is processed or counted as dropped.
    #[test]
    fn each_camera_results_leave_in_capture_order() {
        let (tx, mut rx) = mpsc::channel(4096);
        let fakes = (0..2)
            .map(|_| Fake {
                ms: 3,
                fail_on: None,
            })
            .collect();
        let pool = InferencePool::start(fakes, 3, 3, tx).unwrap();
        let t0 = Utc::now();
        let n = 120u8;
        for i in 0..n {
            for cam in 0..3 {
                assert!(pool.submit(cam, job(i, t0)));
            }
            if i % 5 == 0 {
                std::thread::sleep(Duration::from_millis(4));
            }
        }
        let mut last: Vec<Option<u8>> = vec![None; 3];
        let mut seen = [0u64; 3];
        let deadline = Instant::now() + Duration::from_secs(30);
        while last.iter().any(|l| *l != Some(n - 1)) {
            assert!(Instant::now() < deadline, "results so far: {last:?}");
            match rx.try_recv() {
                Ok(a) => {
                    let v = a.result.expect("no failure injected");
                    assert_eq!((a.at - t0).num_milliseconds(), i64::from(v));
                    if let Some(prev) = last[a.camera] {
                        assert!(v > prev, "camera {}: frame {v} after {prev}", a.camera);
                    }
                    last[a.camera] = Some(v);
                    seen[a.camera] += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        let mut dropped_any = false;
        for (c, k) in seen.iter().enumerate() {
            let counters = pool.counters(c);
            dropped_any |= counters.dropped > 0;
            assert_eq!(*k + counters.dropped, u64::from(n), "camera {c}");
            assert_eq!(counters.processed, *k, "camera {c}");
        }
        assert!(
            dropped_any,
            "the bursts outran the fake analyzer, so frames were replaced"
        );
        pool.stop();
    }

    /// A consumer that stops reading: workers block on the bounded output, submit never
    /// blocks, at most one frame per camera waits, and the rest are counted as dropped.
    #[test]
    fn back_pressure_blocks_workers_not_capture() {
        let (tx, mut rx) = mpsc::channel(2);
        let pool = InferencePool::start(
            vec![Fake {
                ms: 0,
                fail_on: None,
            }],
            2,
            1,
            tx,
        )
        .unwrap();
        let t0 = Utc::now();
        let started = Instant::now();
        for i in 0..200u8 {
            for cam in 0..2 {
                assert!(pool.submit(cam, job(i, t0)));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "submit never waits on inference"
        );
        std::thread::sleep(Duration::from_millis(50));
        assert!(pool.waiting() <= 2, "one waiting frame per camera at most");
        let processed: u64 = (0..2).map(|c| pool.counters(c).processed).sum();
        // the channel holds 2; one more result per worker may be in its hand
        assert!(
            processed <= 4,
            "workers wait on the full channel: {processed}"
        );
        let dropped: u64 = (0..2).map(|c| pool.counters(c).dropped).sum();
        assert!(
            dropped >= 390,
            "the rest was replaced and counted: {dropped}"
        );
        // the consumer catches up: the newest frames still arrive
        let mut newest = [0u8; 2];
        let deadline = Instant::now() + Duration::from_secs(5);
        while newest.iter().any(|v| *v != 199) && Instant::now() < deadline {
            if let Ok(a) = rx.try_recv() {
                newest[a.camera] = a.result.unwrap();
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(newest, [199, 199], "each camera's last frame arrives");
        pool.stop();
    }

    /// Sleeps longer on even frames (so later frames often finish first) and records how many
    /// calls run at once.
    struct Uneven {
        running: Arc<std::sync::atomic::AtomicUsize>,
        most: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Analyzer for Uneven {
        type Output = u8;
        fn analyze(&mut self, frames: &[&Job]) -> Result<Vec<u8>, String> {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.running.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(now, SeqCst);
            let v: Vec<u8> = frames.iter().map(|j| j.frame.rgb()[0]).collect();
            let slow = v.iter().any(|x| x % 2 == 0);
            std::thread::sleep(Duration::from_millis(if slow { 12 } else { 1 }));
            if v.contains(&77) {
                self.running.fetch_sub(1, SeqCst);
                panic!("injected panic");
            }
            self.running.fetch_sub(1, SeqCst);
            Ok(v)
        }
    }

    /// One camera, three workers, a file-like feed that waits instead of dropping: the workers
    /// analyse the camera's successive frames at the same time, frames finish out of order, yet
    /// every frame is released exactly once and in capture order; a panicking call becomes an
    /// error on its frames and the pool goes on.
    #[test]
    fn one_camera_uses_every_worker_and_keeps_its_order() {
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers: Vec<Uneven> = (0..3)
            .map(|_| Uneven {
                running: running.clone(),
                most: most.clone(),
            })
            .collect();
        let (tx, mut rx) = mpsc::channel(8);
        let opts = PoolOptions {
            max_batch: 2,
            per_camera: 3,
            queue_depth: 4,
        };
        let pool = Arc::new(InferencePool::start_with(workers, 1, opts, tx).unwrap());
        let t0 = Utc::now();
        let n = 150u8;
        let feeder = {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for i in 0..n {
                    assert!(pool.submit_wait(0, job(i, t0)));
                }
            })
        };
        let mut got = Vec::new();
        let mut errors = Vec::new();
        while got.len() + errors.len() < n as usize {
            let a = rx.blocking_recv().expect("every frame comes back");
            assert_eq!(a.camera, 0);
            let v = (a.at - t0).num_milliseconds() as u8;
            match a.result {
                Ok(x) => {
                    assert_eq!(x, v);
                    got.push(v)
                }
                Err(e) => {
                    assert_eq!(e, "the analyzer panicked");
                    errors.push(v)
                }
            }
            let all: Vec<u8> = {
                let mut all = got.clone();
                all.extend(&errors);
                all.sort();
                all
            };
            assert_eq!(all.len(), all.last().map_or(0, |l| *l as usize + 1));
        }
        feeder.join().unwrap();
        assert!(
            errors.contains(&77),
            "the panicking call's frames: {errors:?}"
        );
        assert!(
            errors.len() <= 2,
            "only the panicking call's frames: {errors:?}"
        );
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "released in capture order"
        );
        let p = Arc::try_unwrap(pool).ok().expect("the feeder has finished");
        // the counters are updated just after the last result is sent
        let deadline = Instant::now() + Duration::from_secs(5);
        while p.counters(0).processed < u64::from(n) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(p.counters(0).processed, u64::from(n));
        assert_eq!(p.counters(0).dropped, 0, "submit_wait never drops");
        assert_eq!(p.in_flight(), 0);
        assert!(
            most.load(std::sync::atomic::Ordering::SeqCst) >= 2,
            "one camera's frames were analysed by several workers at once"
        );
        p.stop();
    }

    /// With `per_camera` 1 a camera never has two calls running (the old behaviour).
    #[test]
    fn per_camera_one_keeps_a_camera_on_one_worker() {
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers: Vec<Uneven> = (0..3)
            .map(|_| Uneven {
                running: running.clone(),
                most: most.clone(),
            })
            .collect();
        let (tx, mut rx) = mpsc::channel(64);
        let opts = PoolOptions {
            max_batch: 1,
            per_camera: 1,
            queue_depth: 8,
        };
        let pool = InferencePool::start_with(workers, 1, opts, tx).unwrap();
        let t0 = Utc::now();
        for i in 0..40u8 {
            assert!(pool.submit_wait(0, job(i, t0)));
        }
        for i in 0..40u8 {
            let a = rx.blocking_recv().unwrap();
            assert_eq!(a.result, Ok(i));
        }
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 1);
        pool.stop();
    }

    /// An analyzer error is reported on each frame of its call and the pool goes on.
    #[test]
    fn analyzer_errors_are_per_frame_and_the_pool_goes_on() {
        let (tx, mut rx) = mpsc::channel(16);
        let pool = InferencePool::start(
            vec![Fake {
                ms: 0,
                fail_on: Some(1),
            }],
            1,
            1,
            tx,
        )
        .unwrap();
        let t0 = Utc::now();
        let mut got = Vec::new();
        for i in 0..3u8 {
            assert!(pool.submit(0, job(i, t0)));
            let a = rx.blocking_recv().unwrap();
            got.push(a.result);
        }
        assert_eq!(got[0], Ok(0));
        assert_eq!(got[1], Err("injected failure".to_string()));
        assert_eq!(got[2], Ok(2));
        pool.stop();
    }

    #[test]
    fn unknown_camera_and_stopped_pool_refuse_frames() {
        let (tx, _rx) = mpsc::channel(16);
        let pool = InferencePool::start(
            vec![Fake {
                ms: 0,
                fail_on: None,
            }],
            2,
            1,
            tx,
        )
        .unwrap();
        assert!(!pool.submit(2, job(0, Utc::now())), "unknown camera");
        pool.shared.lock().closed = true;
        assert!(!pool.submit(0, job(0, Utc::now())), "stopped pool");
        pool.stop();
    }
}
