//! Operator commands on the school ledger (also the manual fallback when a camera is down):
//! `rollcall checkin | finalize | balance | alerts | report | import | school`.
//!
//! The store is `DATABASE_URL` when set, else the SQLite file `DIR/rollcall.db` of `--data DIR`
//! (default `./data`). The school is `--school` / `ROLLCALL_SCHOOL`, or the only school of the
//! database. Every command prints JSON on stdout (reports may print CSV).

use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, Duration, Utc};
use rollcall_domain::clock::Clock;
use rollcall_domain::ledger::{AlertState, AttendanceSource, SchoolPolicy};
use rollcall_ledger::{CheckIn, ImportKind, Store};
use serde::Serialize;
use std::path::PathBuf;

/// Where the ledger lives and which school to act on.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreOpts {
    /// Data directory holding the SQLite file `rollcall.db` (ignored when DATABASE_URL is set).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// School (tenant) id; defaults to the only school of the database.
    #[arg(long, env = "ROLLCALL_SCHOOL")]
    pub school: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportKind {
    /// Attendance rate per class and per student.
    Attendance,
    /// Lessons consumed and revenue per class, teacher and campus.
    Consumption,
    /// Outstanding balances (lessons left, value, overdraft).
    Outstanding,
    /// Attended check-ins per campus × weekday × hour (school local time).
    Heatmap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Csv,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum LedgerCmd {
    /// Record a check-in (manual or QR fallback) and deduct the lesson.
    Checkin {
        student: String,
        /// RFC 3339 time; default now.
        #[arg(long)]
        at: Option<String>,
        /// manual, qr, face or review.
        #[arg(long, default_value = "manual")]
        source: String,
        #[arg(long)]
        camera: Option<String>,
        /// Idempotency key of the event (replays with the same key are no-ops).
        #[arg(long)]
        event: Option<String>,
        #[command(flatten)]
        store: StoreOpts,
    },
    /// Finalise lessons ended by TIME (absences, deductions per class policy) and run the alert rules.
    Finalize {
        /// RFC 3339 time.
        #[arg(long)]
        until: String,
        #[command(flatten)]
        store: StoreOpts,
    },
    /// Balance of a student (available lessons, per package).
    Balance {
        student: String,
        /// RFC 3339 time; default now.
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        store: StoreOpts,
    },
    /// List alerts (newest first).
    Alerts {
        /// open, acknowledged or resolved.
        #[arg(long)]
        state: Option<String>,
        /// Move alert ID to --set-state.
        #[arg(long, requires = "set_state")]
        id: Option<i64>,
        #[arg(long)]
        set_state: Option<String>,
        #[command(flatten)]
        store: StoreOpts,
    },
    /// Reports over [--from, --to) (default: the last 30 days).
    Report {
        #[arg(value_enum)]
        kind: ReportKind,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
        #[command(flatten)]
        store: StoreOpts,
    },
    /// Import a CSV file (all rows or none): campuses, students, guardians, classes, timetable,
    /// packages or enrollments.
    Import {
        kind: String,
        file: PathBuf,
        #[command(flatten)]
        store: StoreOpts,
    },
    /// Create a school (tenant) if it does not exist.
    School {
        id: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Fixed UTC offset of the school's local time, in minutes (reports).
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        tz_offset_minutes: i64,
        /// School policy as JSON (overdraft, alerts, refund); default policy when absent.
        #[arg(long)]
        policy: Option<String>,
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
    },
}

fn time(s: Option<&str>, what: &str) -> anyhow::Result<DateTime<Utc>> {
    match s {
        None => Ok(rollcall_domain::clock::SystemClock.now()),
        Some(s) => Ok(DateTime::parse_from_rfc3339(s)
            .with_context(|| format!("{what}: {s:?} is not an RFC 3339 time"))?
            .with_timezone(&Utc)),
    }
}

async fn open(opts: &StoreOpts) -> anyhow::Result<Store> {
    let store = Store::from_env(opts.data.as_deref())
        .await
        .context("opening the ledger store")?;
    Ok(match &opts.school {
        Some(id) => store.school(id).await?,
        None => store.only_school().await?,
    })
}

fn print<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn print_csv<T: Serialize>(rows: &[T]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(std::io::stdout());
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()?;
    Ok(())
}

/// Flat CSV row of the attendance report.
#[derive(Serialize)]
struct AttendanceCsv<'a> {
    section: &'a str,
    key: &'a str,
    present: u64,
    late: u64,
    left_early: u64,
    absent: u64,
    excused: u64,
    rate_bp: u64,
}

/// Flat CSV row of the consumption report.
#[derive(Serialize)]
struct ConsumptionCsv<'a> {
    section: &'a str,
    key: &'a str,
    units: i64,
    lessons: &'a str,
    revenue_cents: i64,
}

fn att_csv<'a>(section: &'a str, r: &'a rollcall_ledger::AttendanceRow) -> AttendanceCsv<'a> {
    AttendanceCsv {
        section,
        key: &r.key,
        present: r.present,
        late: r.late,
        left_early: r.left_early,
        absent: r.absent,
        excused: r.excused,
        rate_bp: r.rate_bp,
    }
}

fn cons_csv<'a>(section: &'a str, r: &'a rollcall_ledger::ConsumptionRow) -> ConsumptionCsv<'a> {
    ConsumptionCsv {
        section,
        key: &r.key,
        units: r.units,
        lessons: &r.lessons,
        revenue_cents: r.revenue_cents,
    }
}

/// Runs one ledger command, printing JSON (or CSV for reports).
pub async fn run(cmd: LedgerCmd) -> anyhow::Result<()> {
    match cmd {
        LedgerCmd::Checkin {
            student,
            at,
            source,
            camera,
            event,
            store,
        } => {
            let source = AttendanceSource::parse(&source)
                .ok_or_else(|| anyhow!("--source: {source:?} is not manual, qr, face or review"))?;
            let s = open(&store).await?;
            let ci = CheckIn {
                student_id: student,
                at: time(at.as_deref(), "--at")?,
                source,
                camera_id: camera,
                event_key: event,
            };
            print(&s.check_in(&ci).await?)
        }
        LedgerCmd::Finalize { until, store } => {
            let s = open(&store).await?;
            print(&s.finalize(time(Some(&until), "--until")?).await?)
        }
        LedgerCmd::Balance { student, at, store } => {
            let s = open(&store).await?;
            print(&s.balance(&student, time(at.as_deref(), "--at")?).await?)
        }
        LedgerCmd::Alerts {
            state,
            id,
            set_state,
            store,
        } => {
            let s = open(&store).await?;
            let parse = |v: &str| {
                AlertState::parse(v)
                    .ok_or_else(|| anyhow!("{v:?} is not open, acknowledged or resolved"))
            };
            if let (Some(id), Some(to)) = (id, set_state.as_deref()) {
                s.set_alert_state(id, parse(to)?, "cli").await?;
            }
            let filter = state.as_deref().map(parse).transpose()?;
            print(&s.alerts(filter).await?)
        }
        LedgerCmd::Report {
            kind,
            from,
            to,
            format,
            store,
        } => {
            let s = open(&store).await?;
            let to = time(to.as_deref(), "--to")?;
            let from = match from {
                Some(f) => time(Some(&f), "--from")?,
                None => to - Duration::days(30),
            };
            if from >= to {
                bail!("--from must be before --to");
            }
            match (kind, format) {
                (ReportKind::Attendance, Format::Json) => {
                    print(&s.report_attendance(from, to).await?)
                }
                (ReportKind::Attendance, Format::Csv) => {
                    let r = s.report_attendance(from, to).await?;
                    let rows: Vec<_> = r
                        .per_class
                        .iter()
                        .map(|row| att_csv("class", row))
                        .chain(r.per_student.iter().map(|row| att_csv("student", row)))
                        .collect();
                    print_csv(&rows)
                }
                (ReportKind::Consumption, Format::Json) => {
                    print(&s.report_consumption(from, to).await?)
                }
                (ReportKind::Consumption, Format::Csv) => {
                    let r = s.report_consumption(from, to).await?;
                    let rows: Vec<_> = r
                        .per_class
                        .iter()
                        .map(|row| cons_csv("class", row))
                        .chain(r.per_teacher.iter().map(|row| cons_csv("teacher", row)))
                        .chain(r.per_campus.iter().map(|row| cons_csv("campus", row)))
                        .collect();
                    print_csv(&rows)
                }
                (ReportKind::Outstanding, Format::Json) => print(&s.report_outstanding(to).await?),
                (ReportKind::Outstanding, Format::Csv) => {
                    print_csv(&s.report_outstanding(to).await?)
                }
                (ReportKind::Heatmap, Format::Json) => print(&s.report_heatmap(from, to).await?),
                (ReportKind::Heatmap, Format::Csv) => print_csv(&s.report_heatmap(from, to).await?),
            }
        }
        LedgerCmd::Import { kind, file, store } => {
            let kind: ImportKind = kind.parse()?;
            let s = open(&store).await?;
            let f = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            match s.import_csv(kind, std::io::BufReader::new(f)).await {
                Ok(summary) => print(&summary),
                Err(rollcall_ledger::LedgerError::Import(errors)) => {
                    print(&serde_json::json!({"imported": 0, "errors": errors}))?;
                    bail!(
                        "import of {} refused: {} row error(s), nothing imported",
                        file.display(),
                        errors.len()
                    )
                }
                Err(e) => Err(e.into()),
            }
        }
        LedgerCmd::School {
            id,
            name,
            tz_offset_minutes,
            policy,
            data,
        } => {
            let policy: SchoolPolicy = match policy {
                Some(p) => serde_json::from_str(&p).context("--policy")?,
                None => SchoolPolicy::default(),
            };
            let store = Store::from_env(data.as_deref()).await?;
            let s = store
                .create_school(
                    &id,
                    if name.is_empty() { &id } else { &name },
                    tz_offset_minutes,
                    &policy,
                )
                .await?;
            print(
                &serde_json::json!({"school": s.school_id(), "backend": s.backend(), "policy": s.policy()}),
            )
        }
    }
}

/// `rollcall bench ledger`: `n` check-ins on the PostgreSQL (or other) database at `url` (in a
/// fresh `bench-…` school), or on a SQLite file in a temporary directory when `url` is `None`.
/// How `rollcall bench ledger` drives the store.
#[derive(Debug, Clone, Copy)]
pub enum LedgerBench {
    /// `concurrency` tasks, one transaction per check-in.
    Each { concurrency: usize },
    /// `concurrency` tasks through the group-commit writer (`writers`: PostgreSQL batch
    /// writers, default the library's).
    Grouped {
        concurrency: usize,
        max_batch: usize,
        writers: Option<usize>,
    },
    /// Open loop: arrivals at `rate` per second through the group-commit writer.
    Paced {
        rate: f64,
        max_batch: usize,
        writers: Option<usize>,
    },
}

pub async fn bench_on(
    url: Option<&str>,
    n: usize,
    mode: LedgerBench,
    notify: bool,
) -> anyhow::Result<serde_json::Value> {
    let tmp = std::env::temp_dir().join(format!("rollcall-bench-{}", uuid_like()));
    let store = match url {
        Some(url) => Store::open(url).await?,
        None => Store::open_data_dir(&tmp).await?,
    };
    let report = match mode {
        LedgerBench::Each { concurrency } => {
            crate::bench::ledger::bench_checkins_with(&store, n, concurrency, notify).await
        }
        LedgerBench::Grouped {
            concurrency,
            max_batch,
            writers,
        } => {
            crate::bench::ledger::bench_checkins_grouped(
                &store,
                n,
                concurrency,
                max_batch,
                writers,
                notify,
            )
            .await
        }
        LedgerBench::Paced {
            rate,
            max_batch,
            writers,
        } => {
            crate::bench::ledger::bench_checkins_paced(&store, n, rate, max_batch, writers, notify)
                .await
        }
    };
    store.close().await;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(serde_json::to_value(report?)?)
}

fn uuid_like() -> String {
    format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple())
}
