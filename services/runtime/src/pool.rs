//! The inference stage for live streams: a pool of worker threads (one per core by default),
//! each with its own [`Analyzer`] (for faces: its own ONNX sessions running detect → quality
//! gate → align → embed, [`crate::FaceAnalyzer`]).
//!
//! Cameras hand frames in through one latest-frame-wins slot each (a slow pool drops old frames,
//! counted per camera, and never stalls capture). A worker takes the waiting frames of up to
//! `max_batch` cameras at once (round robin, so no camera starves) and analyses them in one call
//! (for faces: two frames per detector call, all faces in one embedder call). A camera is
//! checked out while one of its frames is in flight, so each camera's results leave the pool in
//! capture order, which the tracker needs; different cameras run in parallel on different
//! workers. The output channel is bounded: when the consumer falls behind, workers wait on it,
//! frames pile up in the slots and are replaced there (counted as dropped), so memory stays
//! bounded at one waiting frame per camera plus the channel.

use chrono::{DateTime, Utc};
use rollcall_domain::Frame;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::mpsc;

/// What a worker runs on the frames it takes: one result per frame, in the order given, or one
/// error for the whole call (reported on each of its frames).
pub trait Analyzer: Send + 'static {
    type Output: Send + 'static;
    fn analyze(&mut self, frames: &[&Frame]) -> Result<Vec<Self::Output>, String>;
}

/// A frame waiting for inference.
pub struct Job {
    pub frame: Frame,
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

#[derive(Default)]
struct State {
    slots: Vec<Option<Job>>,
    busy: Vec<bool>,
    dropped: Vec<u64>,
    processed: Vec<u64>,
    next: usize,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // a worker that panicked cannot leave the state half-changed: every change is one
        // assignment under the lock
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Counters of one camera.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounters {
    pub processed: u64,
    /// Frames replaced in the slot before a worker took them.
    pub dropped: u64,
}

pub struct InferencePool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl InferencePool {
    /// Starts one worker thread per analyzer, for `cameras` cameras; each worker takes the
    /// frames of up to `max_batch` cameras per call. Results go to `out`; the pool stops when
    /// `out` is closed or [`InferencePool::stop`] is called.
    pub fn start<A: Analyzer>(
        analyzers: Vec<A>,
        cameras: usize,
        max_batch: usize,
        out: mpsc::Sender<Analyzed<A::Output>>,
    ) -> std::io::Result<InferencePool> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                slots: (0..cameras).map(|_| None).collect(),
                busy: vec![false; cameras],
                dropped: vec![0; cameras],
                processed: vec![0; cameras],
                ..Default::default()
            }),
            cv: Condvar::new(),
        });
        let mut handles = Vec::new();
        for (i, a) in analyzers.into_iter().enumerate() {
            let (sh, tx) = (shared.clone(), out.clone());
            let h = std::thread::Builder::new()
                .name(format!("inference-{i}"))
                .spawn(move || worker(a, sh, tx, max_batch.max(1)));
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

    /// Hands a frame of `camera` in; an older frame still waiting is replaced (and counted as
    /// dropped). Never blocks on inference. Returns `false` for an unknown camera or a stopped
    /// pool.
    pub fn submit(&self, camera: usize, job: Job) -> bool {
        let mut s = self.shared.lock();
        if s.closed || camera >= s.slots.len() {
            return false;
        }
        if s.slots[camera].replace(job).is_some() {
            s.dropped[camera] += 1;
        }
        drop(s);
        self.shared.cv.notify_one();
        true
    }

    pub fn counters(&self, camera: usize) -> PoolCounters {
        let s = self.shared.lock();
        PoolCounters {
            processed: s.processed.get(camera).copied().unwrap_or(0),
            dropped: s.dropped.get(camera).copied().unwrap_or(0),
        }
    }

    /// Frames waiting in the slots (at most one per camera).
    pub fn waiting(&self) -> usize {
        self.shared.lock().slots.iter().flatten().count()
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

fn worker<A: Analyzer>(
    mut a: A,
    shared: Arc<Shared>,
    out: mpsc::Sender<Analyzed<A::Output>>,
    max_batch: usize,
) {
    loop {
        // take the waiting frames of up to max_batch free cameras, round robin
        let mut taken: Vec<(usize, Job)> = Vec::new();
        {
            let mut s = shared.lock();
            loop {
                if s.closed {
                    return;
                }
                let n = s.slots.len();
                let start = s.next;
                for k in 0..n {
                    let c = (start + k) % n;
                    if !s.busy[c] {
                        if let Some(j) = s.slots[c].take() {
                            s.busy[c] = true;
                            taken.push((c, j));
                            if taken.len() == max_batch {
                                break;
                            }
                        }
                    }
                }
                if let Some((c, _)) = taken.last() {
                    s.next = (c + 1) % n.max(1);
                    break;
                }
                s = shared.cv.wait(s).unwrap_or_else(|p| p.into_inner());
            }
        }
        let frames: Vec<&Frame> = taken.iter().map(|(_, j)| &j.frame).collect();
        let result = a.analyze(&frames);
        let mut results: Vec<Analyzed<A::Output>> = Vec::with_capacity(taken.len());
        match result {
            Ok(per_frame) if per_frame.len() == taken.len() => {
                for ((c, j), o) in taken.iter().zip(per_frame) {
                    results.push(Analyzed {
                        camera: *c,
                        at: j.at,
                        captured: j.captured,
                        result: Ok(o),
                    });
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
                for (c, j) in &taken {
                    results.push(Analyzed {
                        camera: *c,
                        at: j.at,
                        captured: j.captured,
                        result: Err(e.clone()),
                    });
                }
            }
        }
        // Send first, then free the cameras: a camera's next result cannot overtake this one.
        let mut closed = false;
        for r in results {
            if out.blocking_send(r).is_err() {
                closed = true;
            }
        }
        let mut s = shared.lock();
        for (c, _) in &taken {
            s.busy[*c] = false;
            s.processed[*c] += 1;
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
        fn analyze(&mut self, frames: &[&Frame]) -> Result<Vec<u8>, String> {
            std::thread::sleep(Duration::from_millis(self.ms));
            let v: Vec<u8> = frames.iter().map(|f| f.rgb()[0]).collect();
            if self.fail_on.is_some_and(|x| v.contains(&x)) {
                return Err("injected failure".into());
            }
            Ok(v)
        }
    }

    fn job(i: u8, t0: DateTime<Utc>) -> Job {
        Job {
            frame: Frame::from_rgb(2, 2, vec![i; 12]).expect("valid frame"),
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
