//! The inference stage for live streams: a pool of worker threads (one per core by default),
//! each with its own ONNX sessions, running detect → quality gate → align → embed.
//!
//! Cameras hand frames in through one latest-frame-wins slot each (a slow pool drops old frames,
//! counted per camera, and never stalls capture). A worker takes the waiting frames of up to
//! `max_batch` cameras at once (round robin, so no camera starves) and embeds the faces of all
//! of them in one embedder call (one batch when the model's batch dimension is dynamic; the
//! shipped MobileFaceNet has a fixed batch of 1, so it loops). A camera is checked out while one
//! of its frames is in flight, so each camera's results leave the pool in capture order, which
//! the tracker needs; different cameras run in parallel on different workers.

use chrono::{DateTime, Utc};
use rollcall_domain::face::FaceObservation;
use rollcall_domain::Frame;
use rollcall_vision::pipeline::EmbedPolicy;
use rollcall_vision::FacePipeline;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::mpsc;

/// A frame waiting for inference.
pub struct Job {
    pub frame: Frame,
    /// Event time of the frame.
    pub at: DateTime<Utc>,
    /// When it was captured (latency origin).
    pub captured: Instant,
}

/// A frame after inference.
pub struct Analyzed {
    pub camera: usize,
    pub at: DateTime<Utc>,
    pub captured: Instant,
    /// Faces with quality and (for those passing the gate) embeddings; errors are per frame.
    pub faces: Result<Vec<FaceObservation>, String>,
    /// The aligned crop of each face (same order), for review items.
    pub crops: Vec<Frame>,
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
    /// Starts `workers` threads, each with a pipeline from `open` (called once per worker, on
    /// the caller's thread, so an error is returned here), for `cameras` cameras. Results go to
    /// `out`; the pool stops when `out` is closed or [`InferencePool::stop`] is called.
    pub fn start(
        workers: usize,
        cameras: usize,
        max_batch: usize,
        mut open: impl FnMut() -> anyhow::Result<FacePipeline>,
        out: mpsc::Sender<Analyzed>,
    ) -> anyhow::Result<InferencePool> {
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
        let mut pipelines = Vec::new();
        for _ in 0..workers.max(1) {
            pipelines.push(open()?);
        }
        let handles = pipelines
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let (shared, out) = (shared.clone(), out.clone());
                std::thread::Builder::new()
                    .name(format!("inference-{i}"))
                    .spawn(move || worker(p, shared, out, max_batch.max(1)))
                    .expect("spawning an inference thread")
            })
            .collect();
        Ok(InferencePool {
            shared,
            workers: handles,
        })
    }

    /// Hands a frame of `camera` in; an older frame still waiting is replaced (and counted as
    /// dropped). Returns `false` for an unknown camera or a stopped pool.
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

    /// Stops taking frames; workers finish the frames in flight (waiting ones are dropped) and
    /// exit. Joins them.
    pub fn stop(mut self) {
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

fn worker(mut p: FacePipeline, shared: Arc<Shared>, out: mpsc::Sender<Analyzed>, max_batch: usize) {
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
        let result = p.analyze_many(&frames, EmbedPolicy::Passing);
        let mut results: Vec<Analyzed> = Vec::with_capacity(taken.len());
        match result {
            Ok(per_frame) => {
                for ((c, j), faces) in taken.iter().zip(per_frame) {
                    let (obs, crops): (Vec<_>, Vec<_>) = faces
                        .into_iter()
                        .map(|f| (f.observation, f.aligned))
                        .unzip();
                    results.push(Analyzed {
                        camera: *c,
                        at: j.at,
                        captured: j.captured,
                        faces: Ok(obs),
                        crops,
                    });
                }
            }
            Err(e) => {
                for (c, j) in &taken {
                    results.push(Analyzed {
                        camera: *c,
                        at: j.at,
                        captured: j.captured,
                        faces: Err(e.to_string()),
                        crops: Vec::new(),
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
    // The slot logic without inference, and the per-camera order of results with the real
    // models (`ROLLCALL_MODELS_DIR`, as the test command sets it).
    use super::*;

    /// Bursts from three cameras into two workers: frames are replaced and several are in
    /// flight at once, yet each camera's results leave the pool in capture order, and each
    /// camera's last frame is never lost.
    #[test]
    fn each_camera_results_leave_in_capture_order() {
        #[derive(clap::Parser)]
        struct Args {
            #[command(flatten)]
            v: crate::cmd_vision::VisionOpts,
        }
        let mut v = <Args as clap::Parser>::parse_from(["test"]).v;
        v.threads = 1;
        let (tx, mut rx) = mpsc::channel(4096);
        let pool = InferencePool::start(2, 3, 3, || v.open(), tx).unwrap();
        let t0 = Utc::now();
        let n = 60i64;
        for i in 0..n {
            for cam in 0..3 {
                let frame = Frame::from_rgb(64, 48, vec![(i * 4) as u8; 64 * 48 * 3]).unwrap();
                assert!(pool.submit(
                    cam,
                    Job {
                        frame,
                        at: t0 + chrono::Duration::milliseconds(i),
                        captured: Instant::now(),
                    },
                ));
            }
            if i % 5 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(15));
            }
        }
        let mut last: Vec<Option<i64>> = vec![None; 3];
        let mut seen = [0u32; 3];
        let deadline = Instant::now() + std::time::Duration::from_secs(120);
        while last.iter().any(|l| *l != Some(n - 1)) {
            assert!(Instant::now() < deadline, "results so far: {last:?}");
            match rx.try_recv() {
                Ok(a) => {
                    assert!(a.faces.is_ok(), "{:?}", a.faces.err());
                    let ms = (a.at - t0).num_milliseconds();
                    if let Some(prev) = last[a.camera] {
                        assert!(ms > prev, "camera {}: frame {ms} after {prev}", a.camera);
                    }
                    last[a.camera] = Some(ms);
                    seen[a.camera] += 1;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
        for (c, k) in seen.iter().enumerate() {
            let dropped = pool.counters(c).dropped;
            assert_eq!(
                u64::from(*k) + dropped,
                n as u64,
                "camera {c}: every frame processed or counted as dropped"
            );
        }
        pool.stop();
    }

    #[test]
    fn latest_frame_wins_and_counts_drops() {
        let shared = Shared {
            state: Mutex::new(State {
                slots: vec![None, None],
                busy: vec![false; 2],
                dropped: vec![0; 2],
                processed: vec![0; 2],
                ..Default::default()
            }),
            cv: Condvar::new(),
        };
        let pool = InferencePool {
            shared: Arc::new(shared),
            workers: Vec::new(),
        };
        let f = || Job {
            frame: Frame::from_rgb(2, 2, vec![0; 12]).unwrap(),
            at: Utc::now(),
            captured: Instant::now(),
        };
        assert!(pool.submit(0, f()));
        assert!(pool.submit(0, f()));
        assert!(pool.submit(0, f()));
        assert!(pool.submit(1, f()));
        assert!(!pool.submit(2, f()), "unknown camera");
        assert_eq!(pool.counters(0).dropped, 2);
        assert_eq!(pool.counters(1).dropped, 0);
        let waiting = pool
            .shared
            .lock()
            .slots
            .iter()
            .filter(|j| j.is_some())
            .count();
        assert_eq!(waiting, 2);
        pool.stop();
    }
}
