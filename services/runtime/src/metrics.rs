//! Counters behind `/metrics` (Prometheus text) and `/healthz`.

use crate::recognizer::Latencies;
use crate::writer::WriterStats;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

/// What the live path counts. Shared behind a mutex ([`SharedMetrics`]).
#[derive(Default)]
pub struct Metrics {
    pub frames: BTreeMap<String, u64>,
    pub faces: u64,
    pub decisions: BTreeMap<&'static str, u64>,
    pub camera_state: BTreeMap<String, String>,
    pub frame_to_decision_ms: Latencies,
    pub first_frame_to_commit_ms: Latencies,
    pub capture: BTreeMap<String, rollcall_capture::CaptureCounters>,
    /// Frames replaced in the inference pool's slot before a worker took them.
    pub inference_dropped: BTreeMap<String, u64>,
    /// Analysed frames waiting for the recognizer (bounded channel) and frames waiting in the
    /// pool's slots.
    pub queued_frames: u64,
    /// Frames the analyzer failed on.
    pub inference_errors: u64,
    /// The notification outbox (school, counts), refreshed every second.
    pub outbox: Option<(String, rollcall_ledger::OutboxCounts)>,
    /// The ledger writer's counters.
    pub writer: Option<Arc<WriterStats>>,
    /// Review items the ledger did not take.
    pub review_errors: u64,
    /// The last error of a periodic job (finalize, outbox counts), cleared by its next success.
    pub jobs_failing: BTreeMap<&'static str, String>,
    /// Analysed frames waiting for the gallery (an outage), and those the budget dropped.
    pub held_frames: u64,
    pub held_dropped: u64,
}

pub type SharedMetrics = Arc<Mutex<Metrics>>;

/// The `/healthz` body (the binary serialises it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    pub status: &'static str,
    pub degraded: Vec<String>,
    pub cameras: BTreeMap<String, String>,
    pub ledger: LedgerHealth,
    pub check_ins_committed: u64,
    pub queued_frames: u64,
}

/// The ledger writer's part of [`Health`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LedgerHealth {
    pub committed: u64,
    pub retrying: u64,
    pub in_flight: u64,
    pub parked: u64,
}

pub fn lock(m: &SharedMetrics) -> MutexGuard<'_, Metrics> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    fn committed(&self) -> u64 {
        self.writer
            .as_ref()
            .map_or(0, |w| w.committed.load(Ordering::Relaxed))
    }

    /// `/healthz`: `ok`, or `degraded` with what is degraded (a camera down, the ledger
    /// retrying, a job failing, check-ins parked).
    pub fn health(&self) -> Health {
        let mut degraded = Vec::new();
        for (cam, st) in &self.camera_state {
            if !matches!(st.as_str(), "online" | "connecting" | "ended") {
                degraded.push(format!("camera {cam}: {st}"));
            }
        }
        let mut ledger = LedgerHealth {
            committed: self.committed(),
            ..Default::default()
        };
        if let Some(w) = &self.writer {
            ledger.retrying = w.retrying.load(Ordering::Relaxed);
            ledger.in_flight = w.in_flight.load(Ordering::Relaxed);
            ledger.parked = w.parked.load(Ordering::Relaxed);
            if ledger.retrying > 0 {
                degraded.push(format!(
                    "ledger: {} check-in(s) waiting for the database ({})",
                    ledger.retrying,
                    w.last_error().unwrap_or_default()
                ));
            }
        }
        for (job, e) in &self.jobs_failing {
            degraded.push(format!("{job}: {e}"));
        }
        Health {
            status: if degraded.is_empty() {
                "ok"
            } else {
                "degraded"
            },
            degraded,
            cameras: self.camera_state.clone(),
            check_ins_committed: ledger.committed,
            ledger,
            queued_frames: self.queued_frames,
        }
    }

    /// The Prometheus text exposition.
    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
        let per_camera =
            |s: &mut String, name: &str, vals: &mut dyn Iterator<Item = (&String, u64)>| {
                *s += &format!("# TYPE {name} counter\n");
                for (cam, v) in vals {
                    *s += &format!("{name}{{camera=\"{}\"}} {v}\n", esc(cam));
                }
            };
        per_camera(
            &mut s,
            "rollcall_frames_in_total",
            &mut self.capture.iter().map(|(c, v)| (c, v.frames_in)),
        );
        per_camera(
            &mut s,
            "rollcall_frames_dropped_total",
            &mut self.capture.iter().map(|(c, v)| (c, v.frames_dropped)),
        );
        per_camera(
            &mut s,
            "rollcall_inference_dropped_total",
            &mut self.inference_dropped.iter().map(|(c, v)| (c, *v)),
        );
        per_camera(
            &mut s,
            "rollcall_frames_processed_total",
            &mut self.frames.iter().map(|(c, v)| (c, *v)),
        );
        per_camera(
            &mut s,
            "rollcall_reconnects_total",
            &mut self.capture.iter().map(|(c, v)| (c, v.reconnects)),
        );
        let mut one = |name: &str, kind: &str, v: u64| {
            s += &format!("# TYPE {name} {kind}\n{name} {v}\n");
        };
        one("rollcall_faces_total", "counter", self.faces);
        one("rollcall_queued_frames", "gauge", self.queued_frames);
        one("rollcall_frames_held", "gauge", self.held_frames);
        one(
            "rollcall_frames_held_dropped_total",
            "counter",
            self.held_dropped,
        );
        one(
            "rollcall_inference_errors_total",
            "counter",
            self.inference_errors,
        );
        one(
            "rollcall_review_item_errors_total",
            "counter",
            self.review_errors,
        );
        one(
            "rollcall_check_ins_committed_total",
            "counter",
            self.committed(),
        );
        if let Some(w) = &self.writer {
            let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            one("rollcall_check_in_errors_total", "counter", g(&w.retries));
            one("rollcall_check_ins_parked_total", "counter", g(&w.parked));
            one("rollcall_check_ins_lost_total", "counter", g(&w.lost));
            one("rollcall_check_ins_retrying", "gauge", g(&w.retrying));
            one("rollcall_check_ins_in_flight", "gauge", g(&w.in_flight));
        }
        s += "# TYPE rollcall_decisions_total counter\n";
        for band in ["accept", "review", "unknown"] {
            s += &format!(
                "rollcall_decisions_total{{band=\"{band}\"}} {}\n",
                self.decisions.get(band).copied().unwrap_or(0)
            );
        }
        for (name, v) in [
            ("rollcall_frame_to_decision_ms", &self.frame_to_decision_ms),
            (
                "rollcall_first_frame_to_commit_ms",
                &self.first_frame_to_commit_ms,
            ),
        ] {
            s += &format!("# TYPE {name} summary\n");
            for q in [0.5, 0.99] {
                if let Some(x) = v.percentile(q) {
                    s += &format!("{name}{{quantile=\"{q}\"}} {x}\n");
                }
            }
            s += &format!("{name}_count {}\n", v.count);
        }
        if let Some((school, c)) = &self.outbox {
            s += &rollcall_notify::metrics_text(school, c);
        }
        s += "# TYPE rollcall_camera_up gauge\n";
        for (cam, st) in &self.camera_state {
            let up = matches!(st.as_str(), "online" | "connecting") as u8;
            s += &format!(
                "rollcall_camera_up{{camera=\"{}\",state=\"{st}\"}} {up}\n",
                esc(cam)
            );
        }
        s
    }
}
