//! The store: one pool (SQLite or PostgreSQL through `sqlx::Any`), scoped to one school.
//!
//! This file holds the handle ([`Store`]), opening, migrations and schools. The bottom layer
//! ([`base`]: time conversion, audit rows, existence checks, ledger entries) sits under the
//! feature modules, each adding its own `impl Store` block; a feature module uses `base` and
//! the features below it, never one above.

mod alerts;
mod audit_log;
mod base;
mod charging;
mod corrections;
mod finalize;
mod leave;
mod packages;
mod queries;
mod refunds;
mod reminders;
mod sales;
mod schedule;
mod setup;
mod students;
mod timetable;

pub use crate::db::Backend;
pub use alerts::AlertView;
pub use audit_log::AuditRow;
pub use charging::{CheckIn, CheckInResult};
pub use finalize::FinalizeReport;
pub use leave::{
    AttendanceCorrection, AttendanceLine, LeaveState, LeaveView, LessonBrief, MakeupBooking,
    DEFAULT_MAKEUP_LIMIT, MAKEUP_LIMIT_SETTING,
};
pub use packages::{BalanceView, NewPackage, PackageView, BALANCES_PER_QUERY};
pub use queries::{CheckInEventView, StoredEntry};
pub use refunds::{RefundPolicyView, RefundRequestView};
pub use reminders::{ReminderReport, FEE_REMINDER_DAYS, LESSON_REMINDER_HOUR};
pub use sales::{NewOrder, NewPayment, OrderLine, OrderView, PaymentView};
pub use schedule::{
    parse_weekday, CancelledLessonView, ClassEdit, ClassEdited, HolidayAdded, HolidayView,
    LessonCancelled, LessonMove, LessonMoved, NewSeries, SeriesChange, SeriesView, Transferred,
};
pub use students::{
    AttendanceRecord, EnrolledClass, ExpiryMoved, GuardianDetail, LeftSchool, NewGuardian,
    NewStudent, RegistrationConsent, Resumed, StudentState, StudentStatus, MAX_GUARDIANS,
};
pub use timetable::{ClassKind, NewClass, NewLesson, MAX_CAPACITY};

pub(crate) use alerts::{alert_data_json, raise_alert};
pub(crate) use base::{audit, from_ms, ms, parse_enum, require};
pub(crate) use charging::apply_entry;
pub(crate) use packages::{
    insert_package, packages_stmt, parse_packages, LessonRows, StudentPackages,
};
pub(crate) use setup::insert_campus;
pub(crate) use students::{insert_guardian, insert_student};
pub(crate) use timetable::{
    booked_lessons_stmt, insert_class, insert_enrollment, insert_lesson, parse_booked_lessons,
};

use crate::{schema, LedgerError, Result};
use base::parse_json;
use chrono::{DateTime, Utc};
use rollcall_domain::clock::{Clock, SystemClock};
use rollcall_domain::ledger::*;
use serde_json::json;
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Row, Transaction};
use std::path::Path;
use std::sync::Arc;

/// Handle on the ledger of one school. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    /// Transactions that write (SQLite: a single connection; PostgreSQL: same as `pool`).
    write_pool: AnyPool,
    backend: Backend,
    school: String,
    pub(crate) policy: SchoolPolicy,
    pub(crate) tz_offset_minutes: i64,
    /// SQLite has one writer at a time: writers of this process queue here instead of sleeping
    /// in SQLite's busy handler (`BEGIN IMMEDIATE` still guards against other processes).
    writer: Arc<tokio::sync::Mutex<()>>,
    /// SQLite: the check-in path's own connection (see [`crate::db`]); `None` inside when
    /// closed. `None` on PostgreSQL and for an in-memory SQLite database.
    lite: Option<Arc<std::sync::Mutex<Option<rusqlite::Connection>>>>,
    /// Where every time the ledger records comes from ([`Store::now`]): the system clock
    /// unless [`Store::with_clock`] injected another.
    clock: Arc<dyn Clock>,
    /// Liveness of this store's handles (the SQLite WAL checkpointer stops with the last one).
    _alive: Arc<()>,
}

pub(crate) struct WriteTx {
    pub(crate) tx: Transaction<'static, Any>,
    _guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
    pub(crate) async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// A SQLite pool in WAL mode. The `writer` pool's connection does not checkpoint the WAL
/// itself (`wal_autocheckpoint=0`): a commit that happened to cross the 1000-page threshold
/// would otherwise copy the WAL back into the database, fsync, and stall the check-in behind
/// it (the p99 of the write path). [`wal_checkpointer`] does that work in the background.
async fn sqlite_pool(url: &str, max: u32, writer: bool) -> Result<AnyPool> {
    Ok(AnyPoolOptions::new()
        .max_connections(max)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                for pragma in [
                    "PRAGMA journal_mode=WAL",
                    "PRAGMA synchronous=NORMAL",
                    "PRAGMA busy_timeout=10000",
                    "PRAGMA foreign_keys=ON",
                ] {
                    conn.execute(pragma).await?;
                }
                if writer {
                    conn.execute("PRAGMA wal_autocheckpoint=0").await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await?)
}

/// Checkpoints the WAL of a SQLite store every 200 ms from a reader connection
/// (`PASSIVE`: it never waits for, or blocks, the writer or readers), until the last handle on
/// the store is dropped or its pool is closed. When the process ends, SQLite's last connection
/// checkpoints what is left; other processes on the same file checkpoint as usual.
async fn wal_checkpointer(pool: AnyPool, alive: std::sync::Weak<()>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if alive.upgrade().is_none() || pool.is_closed() {
            return;
        }
        if let Err(e) = pool.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
            tracing::debug!(error = %e, "WAL checkpoint failed");
        }
    }
}

impl Store {
    /// Opens (creating and migrating) a database: `sqlite://PATH` or `postgres://…`. The
    /// returned store is scoped to no school yet; call [`Store::school`].
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(LedgerError::Invalid {
                field: "database url",
                message: format!("unsupported: {url}"),
            });
        };
        let (pool, write_pool) = match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                // one writer connection: SQLite writes are serial anyway, and a single
                // connection keeps its page cache warm instead of re-reading pages another
                // connection changed
                let write_pool = sqlite_pool(&url, 1, true).await?;
                (sqlite_pool(&url, 4, false).await?, write_pool)
            }
            Backend::Postgres => {
                // A check-in batch's statement texts vary with its size, so keep more of them
                // prepared than sqlx's default 100 (unless the URL says otherwise); and do not
                // ping a connection before every transaction (a lost connection fails the
                // transaction, which is retried, instead of costing every one a round trip).
                let url = if url.contains("statement-cache-capacity") {
                    url.to_string()
                } else {
                    format!(
                        "{url}{}statement-cache-capacity=1024",
                        if url.contains('?') { '&' } else { '?' }
                    )
                };
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .test_before_acquire(false)
                    .connect(&url)
                    .await?;
                // Writes (check-ins above all) run on connections of their own that plan each
                // prepared statement once (`force_generic_plan`). Their statements are keyed
                // lookups (a school, its students, lessons, packages), which a generic plan
                // serves with the same indexes; a custom plan is re-planned at every
                // execution (about 1 ms for a check-in's composed statements) and, with
                // statistics that predate a school's rows, can pick an index on `school_id`
                // alone and scan the whole school (measured: 1.8 ms against 0.5 ms).
                let write_pool = AnyPoolOptions::new()
                    .max_connections(8)
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("SET plan_cache_mode = force_generic_plan")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?;
                (pool, write_pool)
            }
        };
        let alive = Arc::new(());
        if backend == Backend::Sqlite {
            tokio::spawn(wal_checkpointer(pool.clone(), Arc::downgrade(&alive)));
        }
        let store = Store {
            pool,
            write_pool,
            backend,
            school: String::new(),
            policy: SchoolPolicy::default(),
            tz_offset_minutes: 0,
            writer: Arc::new(tokio::sync::Mutex::new(())),
            lite: None,
            clock: Arc::new(SystemClock),
            _alive: alive,
        };
        store.migrate().await?;
        let mut store = store;
        if backend == Backend::Sqlite {
            store.lite =
                crate::db::open_lite(url)?.map(|c| Arc::new(std::sync::Mutex::new(Some(c))));
        }
        Ok(store)
    }

    /// SQLite file `DIR/rollcall.db` (WAL mode), creating `DIR`.
    pub async fn open_data_dir(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir)?;
        Store::open(&format!("sqlite://{}", dir.join("rollcall.db").display())).await
    }

    /// `DATABASE_URL` when set, else the SQLite file in `dir` (default `./data`).
    pub async fn from_env(dir: Option<&Path>) -> Result<Store> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => Store::open(&url).await,
            _ => Store::open_data_dir(dir.unwrap_or(Path::new("data"))).await,
        }
    }

    /// This store reading its time from `clock` (a test's manual clock, a demo's shifted one):
    /// every time the ledger records itself (creation times, audit rows, outbox rows) is
    /// `clock`'s. Handles scoped from it ([`Store::school`]) keep it.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Store {
        self.clock = clock;
        self
    }

    /// The current time by this store's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// This store's clock (for the components that share its notion of time).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn school_id(&self) -> &str {
        &self.school
    }

    pub fn policy(&self) -> &SchoolPolicy {
        &self.policy
    }

    pub async fn close(&self) {
        if let Some(l) = &self.lite {
            let _guard = self.writer.lock().await;
            l.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
        self.pool.close().await;
        self.write_pool.close().await;
    }

    async fn migrate(&self) -> Result<()> {
        let _g = self.writer.lock().await;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for m in schema::MIGRATIONS {
            let (version, description) = (&m.version, &m.description);
            let sql = match self.backend {
                Backend::Sqlite => m.sqlite,
                Backend::Postgres => m.postgres,
            };
            let mut tx = self.begin_raw().await?;
            let done = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *tx)
                .await?;
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)")
                .bind(*version)
                .bind(*description)
                .bind(ms(self.now()))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    async fn begin_raw(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.write_pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.write_pool.begin().await?,
        })
    }

    /// The check-in path's SQLite connection, while open.
    pub(crate) fn lite_connection(
        &self,
    ) -> Option<Arc<std::sync::Mutex<Option<rusqlite::Connection>>>> {
        self.lite.clone()
    }

    /// This process's SQLite writers take turns here.
    pub(crate) async fn writer_lock(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.writer.clone().lock_owned().await
    }

    pub(crate) async fn write(&self) -> Result<WriteTx> {
        let guard = match self.backend {
            Backend::Sqlite => Some(self.writer.clone().lock_owned().await),
            Backend::Postgres => None,
        };
        let tx = self.begin_raw().await?;
        Ok(WriteTx { tx, _guard: guard })
    }

    /// Creates a school (tenant); idempotent on the id (the existing school is kept).
    pub async fn create_school(
        &self,
        id: &str,
        name: &str,
        tz_offset_minutes: i64,
        policy: &SchoolPolicy,
    ) -> Result<Store> {
        rollcall_domain::TenantId::new(id).map_err(|e| LedgerError::Invalid {
            field: "school",
            message: e.to_string(),
        })?;
        let mut w = self.write().await?;
        let policy_json =
            serde_json::to_string(policy).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        let now = ms(self.now());
        let ins = sqlx::query(
            "INSERT INTO schools (id, name, tz_offset_minutes, policy_json, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING created_at",
        )
        .bind(id)
        .bind(name)
        .bind(tz_offset_minutes)
        .bind(&policy_json)
        .bind(now)
        .fetch_optional(w.conn())
        .await?;
        if ins.is_some() {
            audit(
                w.conn(),
                id,
                "setup",
                "create",
                "school",
                id,
                None,
                Some(json!({"name": name, "policy": policy})),
                now,
            )
            .await?;
        }
        w.commit().await?;
        self.school(id).await
    }

    /// The store scoped to an existing school.
    pub async fn school(&self, id: &str) -> Result<Store> {
        let row = sqlx::query("SELECT policy_json, tz_offset_minutes FROM schools WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| LedgerError::NotFound {
                entity: "school",
                id: id.into(),
            })?;
        let mut s = self.clone();
        s.school = id.into();
        s.policy = parse_json(&row.try_get::<String, _>(0)?, "school policy")?;
        s.tz_offset_minutes = row.try_get(1)?;
        Ok(s)
    }

    /// The only school of the database (for single-school installs and the CLI).
    pub async fn only_school(&self) -> Result<Store> {
        let rows = sqlx::query("SELECT id FROM schools ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        match rows.as_slice() {
            [one] => self.school(&one.try_get::<String, _>(0)?).await,
            [] => Err(LedgerError::NotFound {
                entity: "school",
                id: "(none)".into(),
            }),
            _ => Err(LedgerError::Invalid {
                field: "school",
                message: "several schools: name one".into(),
            }),
        }
    }

    pub(crate) fn need_school(&self) -> Result<&str> {
        if self.school.is_empty() {
            Err(LedgerError::Invalid {
                field: "school",
                message: "store is not scoped to a school".into(),
            })
        } else {
            Ok(&self.school)
        }
    }
}
