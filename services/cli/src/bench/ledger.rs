//! Check-in throughput benchmark (`rollcall bench ledger`).

use anyhow::{anyhow, Result};
use chrono::{Duration, TimeZone, Utc};
use rollcall_domain::clock::{Clock, SystemClock};
use rollcall_domain::ledger::{
    AttendanceSource, CheckInOutcome, ClassPolicy, DeductionDecision, SchoolPolicy,
};
use rollcall_ledger::*;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub backend: Backend,
    pub checkins: u64,
    pub concurrency: usize,
    /// Group commit: the most check-ins per transaction (`None`: one transaction each).
    pub group_commit: Option<usize>,
    /// Open loop: the arrival rate offered (check-ins per second); `None`: closed loop,
    /// `concurrency` tasks each waiting for its commit before the next check-in.
    pub offered_per_s: Option<f64>,
    pub students: usize,
    /// Arrival notices on: each student has a guardian with a phone, and every check-in writes
    /// its SMS notice to the outbox in the same transaction.
    pub notifications: bool,
    pub seconds: f64,
    /// Check-ins committed (each with its attendance row and deduction) per second.
    pub checkins_per_s: f64,
    /// Latency of one `check_in` call (transaction commit included), milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Deductions found in the ledger afterwards (must equal `checkins`).
    pub deductions: u64,
    /// Notices found in the outbox afterwards: with notifications on, an arrival per check-in
    /// and one per alert raised (low balance); else 0.
    pub notices: u64,
}

/// Runs `n` check-ins (each a distinct (student, lesson), each deducting one lesson) from
/// `concurrency` tasks in a fresh school of `store`'s database and reports throughput and
/// latency; `notify`: with arrival notices (see [`BenchReport::notifications`]).
pub async fn bench_checkins_with(
    store: &Store,
    n: usize,
    concurrency: usize,
    notify: bool,
) -> Result<BenchReport> {
    bench_run(store, n, concurrency, None, notify).await
}

/// [`bench_checkins_with`] through a [`GroupCommit`] writer committing up to `max_batch`
/// check-ins per transaction; latency is then the wait for the caller's batch to commit.
/// `writers`: PostgreSQL batch writers (default: the ledger's, see [`GroupCommit`]).
pub async fn bench_checkins_grouped(
    store: &Store,
    n: usize,
    concurrency: usize,
    max_batch: usize,
    writers: Option<usize>,
    notify: bool,
) -> Result<BenchReport> {
    bench_run(
        store,
        n,
        concurrency,
        Some((max_batch.max(1), writers)),
        notify,
    )
    .await
}

/// Every benchmark check-in must deduct a lesson from a package.
fn deducted(r: &CheckInResult) -> Result<()> {
    match &r.outcome {
        CheckInOutcome::Recorded {
            deduction: DeductionDecision::FromPackage { .. },
            ..
        } => Ok(()),
        o => Err(anyhow!("bench check-in not deducted: {o:?}")),
    }
}

/// A fresh school of `store`'s database for `n` check-ins: up to 200 students with one package
/// each, enrolled into one class with enough lessons for each to check in once per lesson;
/// `notify`: notifications on, and a guardian with a phone for each student.
async fn setup(store: &Store, n: usize, notify: bool) -> Result<(Store, Vec<NewLesson>, usize)> {
    let school_id = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let s = store
        .create_school(&school_id, "bench", 0, &SchoolPolicy::default())
        .await?;
    s.create_campus("main", "Main").await?;
    s.create_class(&NewClass {
        id: "k".into(),
        course: "bench".into(),
        name: "bench".into(),
        campus_id: "main".into(),
        teacher: "t".into(),
        policy: ClassPolicy::default(),
        capacity: None,
        room_id: None,
        kind: Default::default(),
    })
    .await?;
    let students = n.min(200);
    let per_student = n.div_ceil(students);
    let base = Utc
        .with_ymd_and_hms(2026, 1, 5, 8, 0, 0)
        .single()
        .unwrap_or_default();
    let lessons: Vec<NewLesson> = (0..per_student)
        .map(|j| NewLesson {
            id: format!("L{j}"),
            class_id: "k".into(),
            room_id: None,
            teacher: None,
            start: base + Duration::hours(2 * j as i64),
            end: base + Duration::hours(2 * j as i64 + 1),
        })
        .collect();
    s.add_lessons(&lessons).await?;
    for i in 0..students {
        let id = format!("s{i}");
        s.create_student(&NewStudent {
            id: id.clone(),
            name: id.clone(),
            home_campus_id: None,
        })
        .await?;
        s.enroll("k", &id, base - Duration::days(1)).await?;
        if notify {
            s.add_guardian(&NewGuardian {
                id: format!("g{i}"),
                student_id: id.clone(),
                name: format!("parent of {id}"),
                phone: Some(format!("+1555{i:07}")),
                email: None,
                language: "en".into(),
                notify_prefs: String::new(),
            })
            .await?;
        }
        s.purchase(&NewPackage {
            id: format!("p{i}"),
            student_id: id,
            campus_id: None,
            lessons: per_student as i64 + 1,
            unit_price_cents: 1000,
            price_paid_cents: None,
            bought_at: base - Duration::days(1),
            expires_at: base + Duration::days(3650),
        })
        .await?;
    }
    if notify {
        s.set_notify_settings(
            &NotifySettings {
                enabled: true,
                ..Default::default()
            },
            "bench",
        )
        .await?;
    }
    Ok((s, lessons, students))
}

async fn bench_run(
    store: &Store,
    n: usize,
    concurrency: usize,
    group: Option<(usize, Option<usize>)>,
    notify: bool,
) -> Result<BenchReport> {
    let n = n.max(1);
    let concurrency = concurrency.max(1);
    let (s, lessons, students) = setup(store, n, notify).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let writer = group.map(|(b, w)| match w {
        Some(w) => GroupCommit::spawn_writers(s.clone(), b, concurrency * 2, w),
        None => GroupCommit::spawn(s.clone(), b, concurrency * 2),
    });
    let committer = writer.as_ref().map(|(g, _)| g.clone());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (s, next, lessons) = (s.clone(), next.clone(), lessons.clone());
        let committer = committer.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let ci = CheckIn::new(
                    &format!("s{}", i % students),
                    lessons[i / students].start,
                    AttendanceSource::Face,
                );
                let t = Instant::now();
                let r = match &committer {
                    Some(g) => g.check_in(ci).await?,
                    None => s.check_in(&ci).await?,
                };
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                deducted(&r)?;
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut lat = Vec::with_capacity(n);
    for t in tasks {
        let part = t.await.map_err(|e| anyhow!("bench task: {e}"))??;
        lat.extend(part);
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(committer);
    if let Some((g, task)) = writer {
        drop(g);
        let _ = task.await;
    }
    report(
        &s,
        n,
        students,
        concurrency,
        group.map(|g| g.0),
        None,
        notify,
        seconds,
        lat,
    )
    .await
}

/// Percentiles of `lat` and the deductions found: the report of one run.
#[allow(clippy::too_many_arguments)]
async fn report(
    s: &Store,
    n: usize,
    students: usize,
    concurrency: usize,
    group: Option<usize>,
    offered_per_s: Option<f64>,
    notifications: bool,
    seconds: f64,
    mut lat: Vec<f64>,
) -> Result<BenchReport> {
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let deductions = s
        .entries(None)
        .await?
        .iter()
        .filter(|e| e.entry.kind == rollcall_domain::ledger::EntryKind::Deduction)
        .count() as u64;
    let notices = s.outbox_counts(SystemClock.now()).await?.pending as u64;
    Ok(BenchReport {
        backend: s.backend(),
        checkins: n as u64,
        concurrency,
        group_commit: group,
        offered_per_s,
        students,
        notifications,
        seconds,
        checkins_per_s: n as f64 / seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
        deductions,
        notices,
    })
}

/// Open loop: `n` check-ins arrive at `rate` per second (as cameras report them, whatever the
/// database is doing), each committed through a [`GroupCommit`] writer (up to `max_batch` per
/// transaction). Latency runs from each check-in's scheduled arrival to its commit, so time a
/// check-in spent queued behind a slow commit counts (no coordinated omission). `concurrency`
/// in the report is the most check-ins in flight at once.
pub async fn bench_checkins_paced(
    store: &Store,
    n: usize,
    rate: f64,
    max_batch: usize,
    writers: Option<usize>,
    notify: bool,
) -> Result<BenchReport> {
    let n = n.max(1);
    let rate = rate.max(1.0);
    let (s, lessons, students) = setup(store, n, notify).await?;
    let (g, writer) = match writers {
        Some(w) => GroupCommit::spawn_writers(s.clone(), max_batch.max(1), 4096, w),
        None => GroupCommit::spawn(s.clone(), max_batch.max(1), 4096),
    };
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    // The arrivals are paced by a thread of their own (std::thread::sleep is exact to tens of
    // microseconds; tokio's timer rounds up to whole milliseconds, which would add up to 1 ms
    // to every latency measured from the scheduled arrival).
    let started = Instant::now();
    let rt = tokio::runtime::Handle::current();
    let pacer = std::thread::spawn(move || {
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let due = started + std::time::Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let ci = CheckIn::new(
                &format!("s{}", i % students),
                lessons[i / students].start,
                AttendanceSource::Face,
            );
            let (g, in_flight, most) = (g.clone(), in_flight.clone(), most.clone());
            tasks.push(rt.spawn(async move {
                let now = in_flight.fetch_add(1, Ordering::Relaxed) + 1;
                most.fetch_max(now, Ordering::Relaxed);
                let r = g.check_in(ci).await;
                in_flight.fetch_sub(1, Ordering::Relaxed);
                let r = r?;
                deducted(&r)?;
                Ok::<_, anyhow::Error>(due.elapsed().as_secs_f64() * 1e3)
            }));
        }
        (tasks, most)
    });
    let (tasks, most) = tokio::task::spawn_blocking(move || pacer.join())
        .await
        .map_err(|e| anyhow!("bench pacer: {e}"))?
        .map_err(|_| anyhow!("bench pacer panicked"))?;
    let mut lat = Vec::with_capacity(n);
    for t in tasks {
        lat.push(t.await.map_err(|e| anyhow!("bench task: {e}"))??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = writer.await;
    let most = most.load(Ordering::Relaxed);
    report(
        &s,
        n,
        students,
        most,
        Some(max_batch.max(1)),
        Some(rate),
        notify,
        seconds,
        lat,
    )
    .await
}
