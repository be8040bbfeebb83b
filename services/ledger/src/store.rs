//! The store: one pool (SQLite or PostgreSQL through `sqlx::Any`), scoped to one school.

use crate::{schema, LedgerError, Result};
use chrono::{DateTime, TimeZone, Utc};
use rollcall_domain::ledger::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Executor, Row, Transaction};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Sqlite,
    Postgres,
}

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

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
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

fn parse_json<T: for<'de> Deserialize<'de>>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| LedgerError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn parse_enum<T>(s: &str, f: fn(&str) -> Option<T>, what: &str) -> Result<T> {
    f(s).ok_or_else(|| LedgerError::Corrupt(format!("{what}: {s:?}")))
}

// -------------------------------------------------------------------------------------------
// Inputs and outputs
// -------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewStudent {
    pub id: String,
    pub name: String,
    pub home_campus_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewGuardian {
    pub id: String,
    pub student_id: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub language: String,
    /// Comma-separated channels, e.g. `sms,email`.
    pub notify_prefs: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewClass {
    pub id: String,
    pub course: String,
    pub name: String,
    pub campus_id: String,
    pub teacher: String,
    pub policy: ClassPolicy,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewLesson {
    pub id: String,
    pub class_id: String,
    pub room_id: Option<String>,
    /// Defaults to the class's teacher.
    pub teacher: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewPackage {
    pub id: String,
    pub student_id: String,
    /// `None`: usable on every campus.
    pub campus_id: Option<String>,
    pub lessons: i64,
    pub unit_price_cents: Cents,
    /// Defaults to `lessons × unit price`.
    pub price_paid_cents: Option<Cents>,
    pub bought_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A check-in event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckIn {
    pub student_id: String,
    pub at: DateTime<Utc>,
    pub source: AttendanceSource,
    pub camera_id: Option<String>,
    /// Identifies the event for replays; defaults to `student|at|source|camera`.
    pub event_key: Option<String>,
}

impl CheckIn {
    pub fn new(student: &str, at: DateTime<Utc>, source: AttendanceSource) -> Self {
        Self {
            student_id: student.into(),
            at,
            source,
            camera_id: None,
            event_key: None,
        }
    }
    pub fn key(&self) -> String {
        self.event_key.clone().unwrap_or_else(|| {
            format!(
                "{}|{}|{}|{}",
                self.student_id,
                ms(self.at),
                self.source.as_str(),
                self.camera_id.as_deref().unwrap_or("-")
            )
        })
    }
}

/// One stored check-in event (see [`Store::checkin_events`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckInEventView {
    pub event_key: String,
    pub student_id: String,
    pub at: DateTime<Utc>,
    pub source: String,
    pub camera_id: Option<String>,
    pub lesson_id: Option<String>,
    pub outcome: String,
}

/// What a check-in did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckInResult {
    pub student_id: String,
    pub at: DateTime<Utc>,
    pub source: AttendanceSource,
    pub camera_id: Option<String>,
    #[serde(flatten)]
    pub outcome: CheckInOutcome,
    /// Available balance after the check-in, in hundredths of a lesson.
    pub balance_units: Units,
    pub balance: String,
    /// Dedup keys of the alerts this check-in raised.
    pub alerts: Vec<String>,
}

/// A package with its derived balance.
#[derive(Debug, Clone, Serialize)]
pub struct PackageView {
    #[serde(flatten)]
    pub package: PackageState,
    pub balance: String,
    pub expired: bool,
}

/// A student's balance.
#[derive(Debug, Clone, Serialize)]
pub struct BalanceView {
    pub student_id: String,
    pub at: DateTime<Utc>,
    pub available_units: Units,
    pub available: String,
    pub overdraft_units: Units,
    pub packages: Vec<PackageView>,
}

/// A stored ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub note: Option<String>,
    #[serde(flatten)]
    pub entry: Entry,
}

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertView {
    pub id: i64,
    pub kind: AlertKind,
    pub state: AlertState,
    pub dedup_key: String,
    pub student_id: String,
    pub class_id: Option<String>,
    pub package_id: Option<String>,
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a finalisation run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FinalizeReport {
    pub until: Option<DateTime<Utc>>,
    pub lessons_finalized: u64,
    pub absent: u64,
    pub excused: u64,
    pub charged_units: Units,
    pub alerts: Vec<String>,
}

/// A recorded refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefundResult {
    pub package_id: String,
    #[serde(flatten)]
    pub quote: RefundQuote,
}

// -------------------------------------------------------------------------------------------
// Opening
// -------------------------------------------------------------------------------------------

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
                .bind(ms(Utc::now()))
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
        let now = ms(Utc::now());
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

// -------------------------------------------------------------------------------------------
// Set-up (also used by the CSV import, inside its single transaction)
// -------------------------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
pub(crate) async fn audit(
    c: &mut AnyConnection,
    school: &str,
    actor: &str,
    action: &str,
    entity: &str,
    entity_id: &str,
    before: Option<Value>,
    after: Option<Value>,
    at: i64,
) -> Result<()> {
    crate::checkin::audit_rows(
        &mut crate::db::AnyDb(c),
        school,
        &[crate::checkin::AuditRow {
            actor: actor.into(),
            action,
            entity,
            entity_id: entity_id.into(),
            before,
            after,
            at,
        }],
    )
    .await
}

fn check_id(field: &'static str, v: &str) -> Result<()> {
    // a new id: no path separators or dot segments either (ids name directories)
    rollcall_domain::ids::check_new_id(v).map_err(|e| LedgerError::Invalid {
        field,
        message: e.to_string(),
    })
}

async fn exists(c: &mut AnyConnection, sql: &str, school: &str, id: &str) -> Result<bool> {
    Ok(sqlx::query(sql)
        .bind(school)
        .bind(id)
        .fetch_optional(c)
        .await?
        .is_some())
}

pub(crate) async fn require(
    c: &mut AnyConnection,
    entity: &'static str,
    school: &str,
    id: &str,
) -> Result<()> {
    let sql = match entity {
        "campus" => "SELECT 1 FROM campuses WHERE school_id = $1 AND id = $2",
        "student" => "SELECT 1 FROM students WHERE school_id = $1 AND id = $2",
        "class" => "SELECT 1 FROM classes WHERE school_id = $1 AND id = $2",
        "lesson" => "SELECT 1 FROM lessons WHERE school_id = $1 AND id = $2",
        "room" => "SELECT 1 FROM rooms WHERE school_id = $1 AND id = $2",
        "package" => "SELECT 1 FROM packages WHERE school_id = $1 AND id = $2",
        _ => return Err(LedgerError::Corrupt(format!("unknown entity {entity}"))),
    };
    if exists(c, sql, school, id).await? {
        Ok(())
    } else {
        Err(LedgerError::NotFound {
            entity,
            id: id.into(),
        })
    }
}

pub(crate) async fn insert_campus(
    c: &mut AnyConnection,
    school: &str,
    id: &str,
    name: &str,
    actor: &str,
) -> Result<()> {
    check_id("campus", id)?;
    sqlx::query("INSERT INTO campuses (school_id, id, name) VALUES ($1, $2, $3)")
        .bind(school)
        .bind(id)
        .bind(name)
        .execute(&mut *c)
        .await?;
    audit(
        c,
        school,
        actor,
        "create",
        "campus",
        id,
        None,
        Some(json!({"name": name})),
        ms(Utc::now()),
    )
    .await
}

pub(crate) async fn insert_student(
    c: &mut AnyConnection,
    school: &str,
    s: &NewStudent,
    actor: &str,
) -> Result<()> {
    check_id("student", &s.id)?;
    if let Some(campus) = &s.home_campus_id {
        require(c, "campus", school, campus).await?;
    }
    let now = ms(Utc::now());
    sqlx::query("INSERT INTO students (school_id, id, name, home_campus_id, lock_seq, created_at) VALUES ($1, $2, $3, $4, 0, $5)")
        .bind(school)
        .bind(&s.id)
        .bind(&s.name)
        .bind(&s.home_campus_id)
        .bind(now)
        .execute(&mut *c)
        .await?;
    audit(
        c,
        school,
        actor,
        "create",
        "student",
        &s.id,
        None,
        Some(json!(s)),
        now,
    )
    .await
}

pub(crate) async fn insert_guardian(
    c: &mut AnyConnection,
    school: &str,
    g: &NewGuardian,
    actor: &str,
) -> Result<()> {
    check_id("guardian", &g.id)?;
    require(c, "student", school, &g.student_id).await?;
    sqlx::query(
        "INSERT INTO guardians (school_id, id, student_id, name, phone, email, language, notify_prefs) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(school)
    .bind(&g.id)
    .bind(&g.student_id)
    .bind(&g.name)
    .bind(&g.phone)
    .bind(&g.email)
    .bind(&g.language)
    .bind(&g.notify_prefs)
    .execute(&mut *c)
    .await?;
    audit(
        c,
        school,
        actor,
        "create",
        "guardian",
        &g.id,
        None,
        Some(json!(g)),
        ms(Utc::now()),
    )
    .await
}

pub(crate) async fn insert_class(
    c: &mut AnyConnection,
    school: &str,
    k: &NewClass,
    actor: &str,
) -> Result<()> {
    check_id("class", &k.id)?;
    require(c, "campus", school, &k.campus_id).await?;
    let policy =
        serde_json::to_string(&k.policy).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO classes (school_id, id, course, name, campus_id, teacher, policy_json) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(school)
    .bind(&k.id)
    .bind(&k.course)
    .bind(&k.name)
    .bind(&k.campus_id)
    .bind(&k.teacher)
    .bind(policy)
    .execute(&mut *c)
    .await?;
    audit(
        c,
        school,
        actor,
        "create",
        "class",
        &k.id,
        None,
        Some(json!(k)),
        ms(Utc::now()),
    )
    .await
}

pub(crate) async fn insert_lesson(
    c: &mut AnyConnection,
    school: &str,
    l: &NewLesson,
    actor: &str,
) -> Result<()> {
    check_id("lesson", &l.id)?;
    if l.end <= l.start {
        return Err(LedgerError::Invalid {
            field: "end",
            message: "lesson must end after it starts".into(),
        });
    }
    let row =
        sqlx::query("SELECT campus_id, teacher FROM classes WHERE school_id = $1 AND id = $2")
            .bind(school)
            .bind(&l.class_id)
            .fetch_optional(&mut *c)
            .await?
            .ok_or_else(|| LedgerError::NotFound {
                entity: "class",
                id: l.class_id.clone(),
            })?;
    let campus: String = row.try_get(0)?;
    let teacher: String = l
        .teacher
        .clone()
        .map(Ok)
        .unwrap_or_else(|| row.try_get(1))?;
    if let Some(room) = &l.room_id {
        require(c, "room", school, room).await?;
    }
    sqlx::query(
        "INSERT INTO lessons (school_id, id, class_id, campus_id, room_id, teacher, start_ms, end_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(school)
    .bind(&l.id)
    .bind(&l.class_id)
    .bind(&campus)
    .bind(&l.room_id)
    .bind(&teacher)
    .bind(ms(l.start))
    .bind(ms(l.end))
    .execute(&mut *c)
    .await?;
    audit(
        c,
        school,
        actor,
        "create",
        "lesson",
        &l.id,
        None,
        Some(json!(l)),
        ms(Utc::now()),
    )
    .await
}

pub(crate) async fn insert_enrollment(
    c: &mut AnyConnection,
    school: &str,
    class: &str,
    student: &str,
    at: DateTime<Utc>,
    actor: &str,
) -> Result<()> {
    require(c, "class", school, class).await?;
    require(c, "student", school, student).await?;
    let ins = sqlx::query(
        "INSERT INTO enrollments (school_id, class_id, student_id, enrolled_at) VALUES ($1, $2, $3, $4) ON CONFLICT (school_id, class_id, student_id) DO NOTHING RETURNING enrolled_at",
    )
    .bind(school)
    .bind(class)
    .bind(student)
    .bind(ms(at))
    .fetch_optional(&mut *c)
    .await?;
    if ins.is_some() {
        audit(
            c,
            school,
            actor,
            "enroll",
            "enrollment",
            &format!("{class}/{student}"),
            None,
            None,
            ms(at),
        )
        .await?;
    }
    Ok(())
}

pub(crate) async fn insert_package(
    c: &mut AnyConnection,
    school: &str,
    p: &NewPackage,
    actor: &str,
) -> Result<()> {
    check_id("package", &p.id)?;
    require(c, "student", school, &p.student_id).await?;
    if let Some(campus) = &p.campus_id {
        require(c, "campus", school, campus).await?;
    }
    if p.lessons <= 0 || p.lessons > 10_000 {
        return Err(LedgerError::Invalid {
            field: "lessons",
            message: format!("{} is not in 1..=10000", p.lessons),
        });
    }
    if p.unit_price_cents < 0 {
        return Err(LedgerError::Invalid {
            field: "unit_price_cents",
            message: "negative".into(),
        });
    }
    if p.expires_at <= p.bought_at {
        return Err(LedgerError::Invalid {
            field: "expires_at",
            message: "package expires before it is bought".into(),
        });
    }
    let paid = match p.price_paid_cents {
        Some(v) if v >= 0 => v,
        Some(_) => {
            return Err(LedgerError::Invalid {
                field: "price_paid_cents",
                message: "negative".into(),
            })
        }
        None => p
            .unit_price_cents
            .checked_mul(p.lessons)
            .ok_or(LedgerError::Invalid {
                field: "unit_price_cents",
                message: "price overflows".into(),
            })?,
    };
    sqlx::query(
        "INSERT INTO packages (school_id, id, student_id, campus_id, lessons_bought, unit_price_cents, price_paid_cents, bought_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(school)
    .bind(&p.id)
    .bind(&p.student_id)
    .bind(&p.campus_id)
    .bind(p.lessons)
    .bind(p.unit_price_cents)
    .bind(paid)
    .bind(ms(p.bought_at))
    .bind(ms(p.expires_at))
    .execute(&mut *c)
    .await?;
    let e = Entry {
        student_id: p.student_id.clone(),
        kind: EntryKind::Purchase,
        package_id: Some(p.id.clone()),
        lesson_id: None,
        units: p.lessons * UNITS_PER_LESSON,
        amount_cents: paid,
        idempotency_key: format!("purchase:{}", p.id),
    };
    append_entry(c, school, &e, ms(p.bought_at), actor, None).await?;
    audit(
        c,
        school,
        actor,
        "purchase",
        "package",
        &p.id,
        None,
        Some(json!(p)),
        ms(Utc::now()),
    )
    .await
}

/// Appends a ledger entry unless its idempotency key exists; true when inserted.
pub(crate) async fn append_entry(
    c: &mut AnyConnection,
    school: &str,
    e: &Entry,
    at: i64,
    actor: &str,
    note: Option<&str>,
) -> Result<bool> {
    append_entry_with(c, school, e, at, actor, note, true).await
}

/// [`append_entry`]; `audit_it: false` when the caller writes one audit row for its whole change.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn append_entry_with(
    c: &mut AnyConnection,
    school: &str,
    e: &Entry,
    at: i64,
    actor: &str,
    note: Option<&str>,
    audit_it: bool,
) -> Result<bool> {
    let ins = sqlx::query(
        "INSERT INTO ledger (school_id, student_id, kind, package_id, lesson_id, units, amount_cents, idempotency_key, at, actor, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (school_id, idempotency_key) DO NOTHING RETURNING seq",
    )
    .bind(school)
    .bind(&e.student_id)
    .bind(e.kind.as_str())
    .bind(&e.package_id)
    .bind(&e.lesson_id)
    .bind(e.units)
    .bind(e.amount_cents)
    .bind(&e.idempotency_key)
    .bind(at)
    .bind(actor)
    .bind(note)
    .fetch_optional(&mut *c)
    .await?;
    if ins.is_some() && audit_it {
        audit(
            c,
            school,
            actor,
            e.kind.as_str(),
            "ledger",
            &e.idempotency_key,
            None,
            Some(json!(e)),
            at,
        )
        .await?;
    }
    Ok(ins.is_some())
}

/// Serialises writers per student: PostgreSQL row lock until commit (SQLite: the write lock).
async fn lock_student(c: &mut AnyConnection, school: &str, student: &str) -> Result<()> {
    let r =
        sqlx::query("UPDATE students SET lock_seq = lock_seq + 1 WHERE school_id = $1 AND id = $2")
            .bind(school)
            .bind(student)
            .execute(c)
            .await?;
    if r.rows_affected() == 0 {
        return Err(LedgerError::NotFound {
            entity: "student",
            id: student.into(),
        });
    }
    Ok(())
}

fn booked_from_row(r: &AnyRow) -> Result<(BookedLesson, ClassPolicy)> {
    booked(
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
        &r.try_get::<String, _>(5)?,
    )
}

fn booked(
    lesson_id: String,
    class_id: String,
    campus_id: String,
    start: i64,
    end: i64,
    policy_json: &str,
) -> Result<(BookedLesson, ClassPolicy)> {
    let policy: ClassPolicy = parse_json(policy_json, "class policy")?;
    Ok((
        BookedLesson {
            lesson_id,
            class_id,
            campus_id,
            start: from_ms(start),
            end: from_ms(end),
            timing: policy.timing,
        },
        policy,
    ))
}

/// The statement reading the lessons each of `students` is booked into (enrolled class or
/// make-up) overlapping `[from, to]` (`None`: no students, nothing to read).
pub(crate) fn booked_lessons_stmt(
    school: &str,
    students: &[&str],
    from: i64,
    to: i64,
) -> Option<crate::db::Stmt> {
    if students.is_empty() {
        return None;
    }
    let ids = crate::db::list_marks(students.len(), 4);
    let cols = "l.id, l.class_id, l.campus_id, l.start_ms, l.end_ms, k.policy_json";
    let sql = format!(
        "SELECT {cols}, e.student_id FROM lessons l \
         JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id \
         JOIN enrollments e ON e.school_id = l.school_id AND e.class_id = l.class_id \
         WHERE l.school_id = $1 AND l.start_ms <= $2 AND l.end_ms >= $3 AND e.student_id IN ({ids}) \
         UNION SELECT {cols}, m.student_id FROM lessons l \
         JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id \
         JOIN makeups m ON m.school_id = l.school_id AND m.lesson_id = l.id \
         WHERE l.school_id = $1 AND l.start_ms <= $2 AND l.end_ms >= $3 AND m.student_id IN ({ids})"
    );
    let mut args: Vec<crate::db::Arg> = vec![school.into(), to.into(), from.into()];
    args.extend(students.iter().map(|s| crate::db::Arg::from(*s)));
    Some(crate::db::Stmt::new(sql, args, 7))
}

/// The rows of [`booked_lessons_stmt`], by student.
pub(crate) fn parse_booked_lessons(
    rows: Vec<crate::db::Row>,
) -> Result<HashMap<String, Vec<BookedLesson>>> {
    let mut out: HashMap<String, Vec<BookedLesson>> = HashMap::new();
    for r in rows {
        let (lesson, _) = booked(
            r.text(0)?,
            r.text(1)?,
            r.text(2)?,
            r.int(3)?,
            r.int(4)?,
            &r.text(5)?,
        )?;
        out.entry(r.text(6)?).or_default().push(lesson);
    }
    Ok(out)
}

/// Packages of a student with their derived balances, and the overdraft debt (one round trip).
pub(crate) async fn load_packages(
    c: &mut AnyConnection,
    school: &str,
    student: &str,
) -> Result<(Vec<PackageState>, Units)> {
    Ok(
        load_packages_of(&mut crate::db::AnyDb(c), school, &[student])
            .await?
            .remove(student)
            .unwrap_or_default(),
    )
}

/// [`load_packages`] of several students in one round trip, by student (a student without
/// packages or debt has no entry).
pub(crate) async fn load_packages_of(
    db: &mut dyn crate::db::Db,
    school: &str,
    students: &[&str],
) -> Result<HashMap<String, (Vec<PackageState>, Units)>> {
    Ok(packages_and_lesson_rows(db, school, students, &[]).await?.0)
}

/// Each student's packages with their balances, and the overdraft debt.
pub(crate) type StudentPackages = HashMap<String, (Vec<PackageState>, Units)>;

/// The ledger rows (kind, units) of some (student, lesson) pairs.
pub(crate) type LessonRows = HashMap<(String, String), Vec<(EntryKind, Units)>>;

/// [`load_packages_of`], and in the same statement the ledger rows of `students` for
/// `lessons` (what a charge needs to know whether the lesson is paid already).
pub(crate) async fn packages_and_lesson_rows(
    db: &mut dyn crate::db::Db,
    school: &str,
    students: &[&str],
    lessons: &[&str],
) -> Result<(StudentPackages, LessonRows)> {
    match packages_stmt(school, students, lessons) {
        Some(s) => parse_packages(db.fetch(&s.sql, s.args).await?),
        None => Ok(Default::default()),
    }
}

/// The statement of [`packages_and_lesson_rows`] (`None`: no students, nothing to read).
pub(crate) fn packages_stmt(
    school: &str,
    students: &[&str],
    lessons: &[&str],
) -> Option<crate::db::Stmt> {
    if students.is_empty() {
        return None;
    }
    let ids = crate::db::list_marks(students.len(), 2);
    // column 0 tells the row apart: 'p' package, 'o' overdraft debt, 'l' a lesson's entry
    let mut sql = format!(
        "SELECT 'p', p.student_id, p.id, p.campus_id, p.lessons_bought, p.unit_price_cents, p.price_paid_cents, p.bought_at, p.expires_at, \
         CAST(COALESCE((SELECT SUM(e.units) FROM ledger e WHERE e.school_id = p.school_id AND e.package_id = p.id), 0) AS BIGINT) \
         FROM packages p WHERE p.school_id = $1 AND p.student_id IN ({ids}) \
         UNION ALL SELECT 'o', o.student_id, NULL, NULL, 0, 0, 0, 0, 0, CAST(SUM(o.units) AS BIGINT) FROM ledger o \
         WHERE o.school_id = $1 AND o.student_id IN ({ids}) AND o.package_id IS NULL GROUP BY o.student_id"
    );
    if !lessons.is_empty() {
        let ls = crate::db::list_marks(lessons.len(), 2 + students.len());
        sql.push_str(&format!(
            " UNION ALL SELECT 'l', l.student_id, l.lesson_id, l.kind, 0, 0, 0, 0, 0, l.units FROM ledger l \
             WHERE l.school_id = $1 AND l.student_id IN ({ids}) AND l.lesson_id IN ({ls})"
        ));
    }
    let mut args: Vec<crate::db::Arg> = vec![school.into()];
    args.extend(students.iter().map(|s| crate::db::Arg::from(*s)));
    args.extend(lessons.iter().map(|l| crate::db::Arg::from(*l)));
    Some(crate::db::Stmt::new(sql, args, 10))
}

/// The rows of [`packages_stmt`]: each student's packages (sorted by expiry) with the
/// overdraft debt, and the lessons' ledger rows.
pub(crate) fn parse_packages(rows: Vec<crate::db::Row>) -> Result<(StudentPackages, LessonRows)> {
    let mut out: HashMap<String, (Vec<PackageState>, Units)> = HashMap::new();
    let mut rows_of: LessonRows = HashMap::new();
    for r in rows {
        let student = r.text(1)?;
        match r.text(0)?.as_str() {
            "l" => {
                let kind = parse_enum(&r.text(3)?, EntryKind::parse, "entry kind")?;
                rows_of
                    .entry((student, r.text(2)?))
                    .or_default()
                    .push((kind, r.int(9)?));
            }
            "o" => out.entry(student).or_default().1 -= r.int(9)?,
            _ => out.entry(student).or_default().0.push(PackageState {
                package_id: r.text(2)?,
                campus_id: r.opt_text(3)?,
                lessons_bought: r.int(4)?,
                unit_price_cents: r.int(5)?,
                price_paid_cents: r.int(6)?,
                bought_at: from_ms(r.int(7)?),
                expires_at: from_ms(r.int(8)?),
                balance_units: r.int(9)?,
            }),
        }
    }
    for (pkgs, od) in out.values_mut() {
        pkgs.sort_by(|a, b| {
            a.expires_at
                .cmp(&b.expires_at)
                .then(a.package_id.cmp(&b.package_id))
        });
        *od = (*od).max(0);
    }
    Ok((out, rows_of))
}

pub(crate) async fn raise_alert(
    c: &mut AnyConnection,
    school: &str,
    a: &AlertDraft,
    at: i64,
    raised: &mut Vec<String>,
) -> Result<()> {
    let ins = sqlx::query(
        "INSERT INTO alerts (school_id, dedup_key, kind, student_id, class_id, package_id, message, state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $8) ON CONFLICT (school_id, dedup_key) DO NOTHING RETURNING seq",
    )
    .bind(school)
    .bind(&a.dedup_key)
    .bind(a.kind.as_str())
    .bind(&a.student_id)
    .bind(&a.class_id)
    .bind(&a.package_id)
    .bind(&a.message)
    .bind(at)
    .fetch_optional(&mut *c)
    .await?;
    if ins.is_some() {
        audit(
            c,
            school,
            "rules",
            "raise",
            "alert",
            &a.dedup_key,
            None,
            Some(json!(a)),
            at,
        )
        .await?;
        raised.push(a.dedup_key.clone());
        crate::outbox::enqueue_alert(&mut *c, school, a, at, None).await?;
    }
    Ok(())
}

/// Applies an appended deduction to the in-memory package state: its package's balance (or the
/// overdraft debt when it has none).
pub(crate) fn apply_entry(pkgs: &mut [PackageState], overdraft: &mut Units, e: &Entry) {
    match &e.package_id {
        Some(id) => {
            if let Some(p) = pkgs.iter_mut().find(|p| &p.package_id == id) {
                p.balance_units += e.units;
            }
        }
        None => *overdraft -= e.units,
    }
}

impl Store {
    pub async fn create_campus(&self, id: &str, name: &str) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        insert_campus(w.conn(), &school, id, name, "setup").await?;
        w.commit().await
    }

    pub async fn create_room(&self, id: &str, campus: &str, name: &str) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        require(w.conn(), "campus", &school, campus).await?;
        sqlx::query("INSERT INTO rooms (school_id, id, campus_id, name) VALUES ($1, $2, $3, $4)")
            .bind(&school)
            .bind(id)
            .bind(campus)
            .bind(name)
            .execute(w.conn())
            .await?;
        audit(
            w.conn(),
            &school,
            "setup",
            "create",
            "room",
            id,
            None,
            Some(json!({"campus": campus, "name": name})),
            ms(Utc::now()),
        )
        .await?;
        w.commit().await
    }

    pub async fn create_camera(&self, id: &str, campus: &str, door: &str) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        require(w.conn(), "campus", &school, campus).await?;
        sqlx::query("INSERT INTO cameras (school_id, id, campus_id, door) VALUES ($1, $2, $3, $4)")
            .bind(&school)
            .bind(id)
            .bind(campus)
            .bind(door)
            .execute(w.conn())
            .await?;
        audit(
            w.conn(),
            &school,
            "setup",
            "create",
            "camera",
            id,
            None,
            Some(json!({"campus": campus, "door": door})),
            ms(Utc::now()),
        )
        .await?;
        w.commit().await
    }

    pub async fn create_student(&self, s: &NewStudent) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        insert_student(w.conn(), &school, s, "setup").await?;
        w.commit().await
    }

    /// Registers a student unless the school already has one with this id; returns whether it
    /// was created (enrolling more photos of a known student is normal).
    pub async fn ensure_student(&self, s: &NewStudent) -> Result<bool> {
        let school = self.need_school()?.to_string();
        let exists = sqlx::query("SELECT 1 FROM students WHERE school_id = $1 AND id = $2")
            .bind(&school)
            .bind(&s.id)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        if exists {
            return Ok(false);
        }
        self.create_student(s).await?;
        Ok(true)
    }

    pub async fn add_guardian(&self, g: &NewGuardian) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        insert_guardian(w.conn(), &school, g, "setup").await?;
        w.commit().await
    }

    /// Records a consent decision (e.g. kind `face_recognition`), append-only.
    pub async fn record_consent(
        &self,
        student: &str,
        kind: &str,
        granted: bool,
        given_by: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        require(w.conn(), "student", &school, student).await?;
        sqlx::query("INSERT INTO consents (school_id, student_id, kind, granted, given_by, at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&school)
            .bind(student)
            .bind(kind)
            .bind(i64::from(granted))
            .bind(given_by)
            .bind(ms(at))
            .execute(w.conn())
            .await?;
        audit(
            w.conn(),
            &school,
            given_by,
            "consent",
            "student",
            student,
            None,
            Some(json!({"kind": kind, "granted": granted})),
            ms(at),
        )
        .await?;
        w.commit().await
    }

    /// Latest consent decision of a kind, if any.
    pub async fn consent(&self, student: &str, kind: &str) -> Result<Option<bool>> {
        let r = sqlx::query("SELECT granted FROM consents WHERE school_id = $1 AND student_id = $2 AND kind = $3 ORDER BY at DESC, seq DESC LIMIT 1")
            .bind(self.need_school()?)
            .bind(student)
            .bind(kind)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match r {
            Some(r) => Some(r.try_get::<i64, _>(0)? != 0),
            None => None,
        })
    }

    pub async fn create_class(&self, k: &NewClass) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        insert_class(w.conn(), &school, k, "setup").await?;
        w.commit().await
    }

    pub async fn add_lesson(&self, l: &NewLesson) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        insert_lesson(w.conn(), &school, l, "setup").await?;
        w.commit().await
    }

    /// Adds many lessons in one transaction.
    pub async fn add_lessons(&self, ls: &[NewLesson]) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        for l in ls {
            insert_lesson(w.conn(), &school, l, "setup").await?;
        }
        w.commit().await
    }

    pub async fn enroll(&self, class: &str, student: &str, at: DateTime<Utc>) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        insert_enrollment(w.conn(), &school, class, student, at, "setup").await?;
        w.commit().await
    }

    /// Books a student into one lesson of another class (make-up).
    pub async fn book_makeup(&self, student: &str, lesson: &str, at: DateTime<Utc>) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        require(w.conn(), "student", &school, student).await?;
        require(w.conn(), "lesson", &school, lesson).await?;
        sqlx::query("INSERT INTO makeups (school_id, student_id, lesson_id, booked_at) VALUES ($1, $2, $3, $4) ON CONFLICT (school_id, student_id, lesson_id) DO NOTHING")
            .bind(&school)
            .bind(student)
            .bind(lesson)
            .bind(ms(at))
            .execute(w.conn())
            .await?;
        audit(
            w.conn(),
            &school,
            "staff",
            "book_makeup",
            "lesson",
            lesson,
            None,
            Some(json!({"student": student})),
            ms(at),
        )
        .await?;
        w.commit().await
    }

    /// Records (or updates) a leave request for one lesson.
    pub async fn request_leave(
        &self,
        student: &str,
        lesson: &str,
        requested_at: DateTime<Utc>,
        approved: bool,
        reason: Option<&str>,
    ) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        require(w.conn(), "student", &school, student).await?;
        require(w.conn(), "lesson", &school, lesson).await?;
        let before = sqlx::query("SELECT requested_at, approved FROM leave_requests WHERE school_id = $1 AND student_id = $2 AND lesson_id = $3")
            .bind(&school)
            .bind(student)
            .bind(lesson)
            .fetch_optional(w.conn())
            .await?;
        let before = match before {
            Some(r) => Some(
                json!({"requested_at": r.try_get::<i64, _>(0)?, "approved": r.try_get::<i64, _>(1)? != 0}),
            ),
            None => None,
        };
        sqlx::query(
            "INSERT INTO leave_requests (school_id, student_id, lesson_id, requested_at, approved, reason) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (school_id, student_id, lesson_id) DO UPDATE SET approved = excluded.approved, reason = excluded.reason",
        )
        .bind(&school)
        .bind(student)
        .bind(lesson)
        .bind(ms(requested_at))
        .bind(i64::from(approved))
        .bind(reason)
        .execute(w.conn())
        .await?;
        let after =
            json!({"requested_at": ms(requested_at), "approved": approved, "reason": reason});
        audit(
            w.conn(),
            &school,
            "staff",
            "leave",
            "lesson",
            &format!("{lesson}/{student}"),
            before,
            Some(after),
            ms(requested_at),
        )
        .await?;
        w.commit().await
    }

    /// Buys a package (package row + purchase entry, same transaction).
    pub async fn purchase(&self, p: &NewPackage) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        lock_student(w.conn(), &school, &p.student_id).await?;
        insert_package(w.conn(), &school, p, "staff").await?;
        w.commit().await
    }

    // ---------------------------------------------------------------------------------------
    // Check-in
    // ---------------------------------------------------------------------------------------

    /// Charges `units` for a lesson unless it is already charged (net), then runs the balance
    /// alert rules. Caller holds the student lock.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn charge(
        &self,
        c: &mut AnyConnection,
        school: &str,
        student: &str,
        lesson: &BookedLesson,
        units: Units,
        at: DateTime<Utc>,
        actor: &str,
        alerts: &mut Vec<String>,
        available_after: &mut Option<Units>,
        audit_entry: bool,
    ) -> Result<DeductionDecision> {
        if units <= 0 {
            return Ok(DeductionDecision::Nothing);
        }
        let rows = sqlx::query("SELECT kind, units FROM ledger WHERE school_id = $1 AND student_id = $2 AND lesson_id = $3")
            .bind(school)
            .bind(student)
            .bind(&lesson.lesson_id)
            .fetch_all(&mut *c)
            .await?;
        let mut lesson_rows = Vec::with_capacity(rows.len());
        for r in &rows {
            let kind = parse_enum(&r.try_get::<String, _>(0)?, EntryKind::parse, "entry kind")?;
            lesson_rows.push((kind, r.try_get::<i64, _>(1)?));
        }
        let (mut pkgs, mut overdraft) = load_packages(&mut *c, school, student).await?;
        let (d, entry) =
            self.plan_charge(&pkgs, overdraft, &lesson_rows, student, lesson, units, at);
        let Some(e) = entry else {
            return Ok(d);
        };
        if !append_entry_with(&mut *c, school, &e, ms(at), actor, None, audit_entry).await? {
            return Ok(DeductionDecision::Nothing);
        }
        apply_entry(&mut pkgs, &mut overdraft, &e);
        let (avail, drafts) = self.balance_alerts(student, &pkgs, overdraft, at);
        *available_after = Some(avail);
        for a in &drafts {
            raise_alert(&mut *c, school, a, ms(at), alerts).await?;
        }
        Ok(d)
    }

    /// What charging `units` for `lesson` decides on the student's current packages
    /// (`lesson_rows`: kind and units of the student's ledger entries of this lesson), and the
    /// deduction entry to append, if any. Pure: the caller writes the entry.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn plan_charge(
        &self,
        pkgs: &[PackageState],
        overdraft: Units,
        lesson_rows: &[(EntryKind, Units)],
        student: &str,
        lesson: &BookedLesson,
        units: Units,
        at: DateTime<Utc>,
    ) -> (DeductionDecision, Option<Entry>) {
        if units <= 0 {
            return (DeductionDecision::Nothing, None);
        }
        let (mut net, mut reversals) = (0i64, 0u32);
        for (kind, u) in lesson_rows {
            match kind {
                EntryKind::Deduction => net += u,
                EntryKind::Reversal => {
                    net += u;
                    reversals += 1;
                }
                _ => {}
            }
        }
        if net != 0 {
            return (DeductionDecision::Nothing, None);
        }
        let d = decide_deduction(
            pkgs,
            &lesson.campus_id,
            at,
            units,
            overdraft,
            self.policy.overdraft,
        );
        let (package_id, amount) = match &d {
            DeductionDecision::FromPackage { package_id, units } => {
                let price = pkgs
                    .iter()
                    .find(|p| &p.package_id == package_id)
                    .map_or(0, |p| p.unit_price_cents);
                (Some(package_id.clone()), -revenue_cents(price, *units))
            }
            DeductionDecision::Overdraft { .. } => (None, 0),
            _ => return (d, None),
        };
        let e = Entry {
            student_id: student.into(),
            kind: EntryKind::Deduction,
            package_id,
            lesson_id: Some(lesson.lesson_id.clone()),
            units: -units,
            amount_cents: amount,
            idempotency_key: deduction_key(student, &lesson.lesson_id, reversals),
        };
        (d, Some(e))
    }

    /// The available balance after a charge and the balance alerts it raises (low balance,
    /// packages expiring soon), in that order.
    pub(crate) fn balance_alerts(
        &self,
        student: &str,
        pkgs: &[PackageState],
        overdraft: Units,
        at: DateTime<Utc>,
    ) -> (Units, Vec<AlertDraft>) {
        let avail = available_units(pkgs, overdraft, at);
        let mut drafts = Vec::new();
        if let Some(a) = low_balance_alert(student, avail, pkgs.len() as u64, &self.policy.alerts) {
            drafts.push(a);
        }
        for p in pkgs {
            if let Some(a) = expiring_alert(student, p, at, &self.policy.alerts) {
                drafts.push(a);
            }
        }
        (avail, drafts)
    }

    // ---------------------------------------------------------------------------------------
    // Finalisation
    // ---------------------------------------------------------------------------------------

    /// Finalises every lesson due by `until` (end + grace): booked students without attendance
    /// become absent or excused and are charged per class policy; streak, balance and expiry
    /// alert rules run. Idempotent: running it again (or concurrently) changes nothing more.
    pub async fn finalize(&self, until: DateTime<Utc>) -> Result<FinalizeReport> {
        let school = self.need_school()?.to_string();
        let mut rep = FinalizeReport {
            until: Some(until),
            ..Default::default()
        };
        let rows = sqlx::query(
            "SELECT l.id, l.class_id, l.campus_id, l.start_ms, l.end_ms, k.policy_json FROM lessons l \
             JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id \
             WHERE l.school_id = $1 AND l.finalized_at IS NULL AND l.end_ms <= $2 ORDER BY l.start_ms, l.id",
        )
        .bind(&school)
        .bind(ms(until))
        .fetch_all(&self.pool)
        .await?;
        for r in &rows {
            let (lesson, policy) = booked_from_row(r)?;
            if lesson.finalize_at() > until {
                continue;
            }
            let students: Vec<String> = sqlx::query(
                "SELECT student_id FROM enrollments WHERE school_id = $1 AND class_id = $2 \
                 UNION SELECT student_id FROM makeups WHERE school_id = $1 AND lesson_id = $3",
            )
            .bind(&school)
            .bind(&lesson.class_id)
            .bind(&lesson.lesson_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
            for student in students {
                let mut w = self.write().await?;
                let c = w.conn();
                lock_student(&mut *c, &school, &student).await?;
                let leave = sqlx::query("SELECT approved, requested_at FROM leave_requests WHERE school_id = $1 AND student_id = $2 AND lesson_id = $3")
                    .bind(&school)
                    .bind(&student)
                    .bind(&lesson.lesson_id)
                    .fetch_optional(&mut *c)
                    .await?;
                let leave = match leave {
                    Some(r) => Some(Leave {
                        approved: r.try_get::<i64, _>(0)? != 0,
                        requested_at: from_ms(r.try_get(1)?),
                    }),
                    None => None,
                };
                let Some(out) = finalize_absence(&lesson, &policy.absence, leave.as_ref(), until)
                else {
                    continue;
                };
                let ins = sqlx::query(
                    "INSERT INTO attendance (school_id, student_id, lesson_id, status, source, camera_id, at) VALUES ($1, $2, $3, $4, NULL, NULL, $5) \
                     ON CONFLICT (school_id, student_id, lesson_id) DO NOTHING RETURNING at",
                )
                .bind(&school)
                .bind(&student)
                .bind(&lesson.lesson_id)
                .bind(out.status.as_str())
                .bind(ms(lesson.finalize_at()))
                .fetch_optional(&mut *c)
                .await?;
                if ins.is_none() {
                    continue; // attended (or finalised by a concurrent run)
                }
                audit(
                    &mut *c,
                    &school,
                    "finalize",
                    "absence",
                    "attendance",
                    &format!("{}/{student}", lesson.lesson_id),
                    None,
                    Some(json!({"status": out.status, "charge": out.charge})),
                    ms(until),
                )
                .await?;
                crate::outbox::enqueue_absence(
                    &mut *c, &school, &student, &lesson, out.status, until,
                )
                .await?;
                match out.status {
                    AttendanceStatus::Excused => rep.excused += 1,
                    _ => rep.absent += 1,
                }
                let d = self
                    .charge(
                        &mut *c,
                        &school,
                        &student,
                        &lesson,
                        out.charge.units(),
                        lesson.start,
                        "finalize",
                        &mut rep.alerts,
                        &mut None,
                        true,
                    )
                    .await?;
                rep.charged_units += d.deducted_units();
                if let DeductionDecision::Insufficient { reason, .. } = d {
                    raise_alert(
                        &mut *c,
                        &school,
                        &zero_balance_alert(&student, &lesson.class_id, &lesson.lesson_id, reason),
                        ms(until),
                        &mut rep.alerts,
                    )
                    .await?;
                }
                let hist = sqlx::query(
                    "SELECT l.id, a.status FROM attendance a JOIN lessons l ON l.school_id = a.school_id AND l.id = a.lesson_id \
                     WHERE a.school_id = $1 AND a.student_id = $2 AND l.class_id = $3 ORDER BY l.start_ms, l.id",
                )
                .bind(&school)
                .bind(&student)
                .bind(&lesson.class_id)
                .fetch_all(&mut *c)
                .await?;
                let mut history = Vec::with_capacity(hist.len());
                for h in &hist {
                    history.push((
                        h.try_get::<String, _>(0)?,
                        parse_enum(
                            &h.try_get::<String, _>(1)?,
                            AttendanceStatus::parse,
                            "status",
                        )?,
                    ));
                }
                for s in absence_streaks(&history, self.policy.alerts.absence_streak) {
                    raise_alert(
                        &mut *c,
                        &school,
                        &streak_alert(&student, &lesson.class_id, &s),
                        ms(until),
                        &mut rep.alerts,
                    )
                    .await?;
                }
                w.commit().await?;
            }
            let mut w = self.write().await?;
            let done = sqlx::query("UPDATE lessons SET finalized_at = $1 WHERE school_id = $2 AND id = $3 AND finalized_at IS NULL")
                .bind(ms(until))
                .bind(&school)
                .bind(&lesson.lesson_id)
                .execute(w.conn())
                .await?;
            if done.rows_affected() > 0 {
                audit(
                    w.conn(),
                    &school,
                    "finalize",
                    "finalize",
                    "lesson",
                    &lesson.lesson_id,
                    None,
                    None,
                    ms(until),
                )
                .await?;
                rep.lessons_finalized += 1;
            }
            w.commit().await?;
        }
        self.expiry_sweep(until, &mut rep.alerts).await?;
        Ok(rep)
    }

    /// Raises an alert for each package expiring within the warning period with lessons left.
    async fn expiry_sweep(&self, now: DateTime<Utc>, raised: &mut Vec<String>) -> Result<()> {
        let school = self.need_school()?.to_string();
        let horizon = now + chrono::Duration::days(self.policy.alerts.expiry_warning_days.max(0));
        let students: Vec<String> = sqlx::query("SELECT DISTINCT student_id FROM packages WHERE school_id = $1 AND expires_at > $2 AND expires_at <= $3")
            .bind(&school)
            .bind(ms(now))
            .bind(ms(horizon))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        for s in students {
            let mut w = self.write().await?;
            let (pkgs, _) = load_packages(w.conn(), &school, &s).await?;
            for p in &pkgs {
                if let Some(a) = expiring_alert(&s, p, now, &self.policy.alerts) {
                    raise_alert(w.conn(), &school, &a, ms(now), raised).await?;
                }
            }
            w.commit().await?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Corrections, refunds, alerts
    // ---------------------------------------------------------------------------------------

    /// Reverses every not-yet-reversed deduction of a lesson; returns the reversal entries.
    pub async fn reverse_lesson(
        &self,
        student: &str,
        lesson: &str,
        actor: &str,
        note: &str,
    ) -> Result<Vec<Entry>> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        let c = w.conn();
        lock_student(&mut *c, &school, student).await?;
        let rows = sqlx::query(
            "SELECT d.package_id, d.units, d.amount_cents, d.idempotency_key FROM ledger d WHERE d.school_id = $1 AND d.student_id = $2 AND d.lesson_id = $3 AND d.kind = 'deduction' ORDER BY d.seq",
        )
        .bind(&school)
        .bind(student)
        .bind(lesson)
        .fetch_all(&mut *c)
        .await?;
        let mut out = Vec::new();
        let now = ms(Utc::now());
        for r in &rows {
            let key: String = r.try_get(3)?;
            let e = Entry {
                student_id: student.into(),
                kind: EntryKind::Reversal,
                package_id: r.try_get(0)?,
                lesson_id: Some(lesson.into()),
                units: -r.try_get::<i64, _>(1)?,
                amount_cents: -r.try_get::<i64, _>(2)?,
                idempotency_key: reversal_key(&key),
            };
            if append_entry(&mut *c, &school, &e, now, actor, Some(note)).await? {
                out.push(e);
            }
        }
        w.commit().await?;
        Ok(out)
    }

    /// Charges `units` for a lesson the student attended or missed (e.g. after a reversal);
    /// does nothing when the lesson is already charged.
    pub async fn charge_lesson(
        &self,
        student: &str,
        lesson: &str,
        units: Units,
        actor: &str,
    ) -> Result<DeductionDecision> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        let c = w.conn();
        lock_student(&mut *c, &school, student).await?;
        let r = sqlx::query(
            "SELECT l.id, l.class_id, l.campus_id, l.start_ms, l.end_ms, k.policy_json FROM lessons l JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id WHERE l.school_id = $1 AND l.id = $2",
        )
        .bind(&school)
        .bind(lesson)
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| LedgerError::NotFound { entity: "lesson", id: lesson.into() })?;
        let (bl, _) = booked_from_row(&r)?;
        let mut alerts = Vec::new();
        let d = self
            .charge(
                &mut *c,
                &school,
                student,
                &bl,
                units.clamp(0, UNITS_PER_LESSON),
                bl.start,
                actor,
                &mut alerts,
                &mut None,
                true,
            )
            .await?;
        w.commit().await?;
        Ok(d)
    }

    /// A manual adjustment (signed units) with its own idempotency key.
    pub async fn adjust(
        &self,
        student: &str,
        package: Option<&str>,
        units: Units,
        key: &str,
        actor: &str,
        note: &str,
    ) -> Result<bool> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        lock_student(w.conn(), &school, student).await?;
        if let Some(p) = package {
            // one of this student's packages: another child's would move their balance
            let owner: Option<String> = sqlx::query_scalar(
                "SELECT student_id FROM packages WHERE school_id = $1 AND id = $2",
            )
            .bind(&school)
            .bind(p)
            .fetch_optional(w.conn())
            .await?;
            match owner {
                None => {
                    return Err(LedgerError::NotFound {
                        entity: "package",
                        id: p.into(),
                    })
                }
                Some(o) if o != student => {
                    return Err(LedgerError::Invalid {
                        field: "package_id",
                        message: format!("package {p:?} is not one of student {student:?}'s"),
                    })
                }
                Some(_) => {}
            }
        }
        let e = Entry {
            student_id: student.into(),
            kind: EntryKind::Adjustment,
            package_id: package.map(Into::into),
            lesson_id: None,
            units,
            amount_cents: 0,
            idempotency_key: format!("adjust:{key}"),
        };
        let done = append_entry(w.conn(), &school, &e, ms(Utc::now()), actor, Some(note)).await?;
        w.commit().await?;
        Ok(done)
    }

    /// Refunds a package under the school's rule, recorded as a refund entry; refused when the
    /// rule gives nothing. Refunding twice is a no-op (same idempotency key).
    pub async fn refund(&self, student: &str, package: &str, actor: &str) -> Result<RefundResult> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        lock_student(w.conn(), &school, student).await?;
        let (pkgs, _) = load_packages(w.conn(), &school, student).await?;
        let p = pkgs
            .iter()
            .find(|p| p.package_id == package)
            .ok_or_else(|| LedgerError::NotFound {
                entity: "package",
                id: package.into(),
            })?;
        let q = quote_refund(&self.policy.refund, p);
        if !q.eligible {
            return Err(LedgerError::NotRefundable(
                package.into(),
                format!("{:?}", q.rule),
            ));
        }
        let e = Entry {
            student_id: student.into(),
            kind: EntryKind::Refund,
            package_id: Some(package.into()),
            lesson_id: None,
            units: -q.units,
            amount_cents: -q.refund_cents,
            idempotency_key: format!("refund:{package}"),
        };
        append_entry(
            w.conn(),
            &school,
            &e,
            ms(Utc::now()),
            actor,
            Some(&format!("{:?}", q.rule)),
        )
        .await?;
        w.commit().await?;
        Ok(RefundResult {
            package_id: package.into(),
            quote: q,
        })
    }

    /// Corrects the attendance status of a recorded (student, lesson), e.g. `left_early` after
    /// a review, with the before/after in the audit log. The ledger is not touched: a charge
    /// correction is a separate [`Store::reverse_lesson`] / [`Store::charge_lesson`].
    pub async fn set_attendance_status(
        &self,
        student: &str,
        lesson: &str,
        status: AttendanceStatus,
        actor: &str,
    ) -> Result<AttendanceStatus> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        lock_student(w.conn(), &school, student).await?;
        let before: String = sqlx::query(
            "SELECT status FROM attendance WHERE school_id = $1 AND student_id = $2 AND lesson_id = $3",
        )
        .bind(&school)
        .bind(student)
        .bind(lesson)
        .fetch_optional(w.conn())
        .await?
        .ok_or_else(|| LedgerError::NotFound { entity: "attendance", id: format!("{lesson}/{student}") })?
        .try_get(0)?;
        let before = parse_enum(&before, AttendanceStatus::parse, "attendance status")?;
        sqlx::query("UPDATE attendance SET status = $1 WHERE school_id = $2 AND student_id = $3 AND lesson_id = $4")
            .bind(status.as_str())
            .bind(&school)
            .bind(student)
            .bind(lesson)
            .execute(w.conn())
            .await?;
        audit(
            w.conn(),
            &school,
            actor,
            "correct",
            "attendance",
            &format!("{lesson}/{student}"),
            Some(json!({"status": before})),
            Some(json!({"status": status})),
            ms(Utc::now()),
        )
        .await?;
        w.commit().await?;
        Ok(before)
    }

    /// Moves an alert to another state (audited).
    pub async fn set_alert_state(&self, id: i64, state: AlertState, actor: &str) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        let before: String =
            sqlx::query("SELECT state FROM alerts WHERE school_id = $1 AND seq = $2")
                .bind(&school)
                .bind(id)
                .fetch_optional(w.conn())
                .await?
                .ok_or_else(|| LedgerError::NotFound {
                    entity: "alert",
                    id: id.to_string(),
                })?
                .try_get(0)?;
        let now = ms(Utc::now());
        sqlx::query(
            "UPDATE alerts SET state = $1, updated_at = $2 WHERE school_id = $3 AND seq = $4",
        )
        .bind(state.as_str())
        .bind(now)
        .bind(&school)
        .bind(id)
        .execute(w.conn())
        .await?;
        audit(
            w.conn(),
            &school,
            actor,
            "alert_state",
            "alert",
            &id.to_string(),
            Some(json!({"state": before})),
            Some(json!({"state": state})),
            now,
        )
        .await?;
        w.commit().await
    }

    // ---------------------------------------------------------------------------------------
    // Reads
    // ---------------------------------------------------------------------------------------

    /// Available balance of a student at `at` (packages not expired, minus overdraft).
    pub async fn balance(&self, student: &str, at: DateTime<Utc>) -> Result<BalanceView> {
        let school = self.need_school()?.to_string();
        let mut c = self.pool.acquire().await?;
        require(&mut c, "student", &school, student).await?;
        let (pkgs, overdraft) = load_packages(&mut c, &school, student).await?;
        let avail = available_units(&pkgs, overdraft, at);
        Ok(BalanceView {
            student_id: student.into(),
            at,
            available_units: avail,
            available: fmt_units(avail),
            overdraft_units: overdraft,
            packages: pkgs
                .into_iter()
                .map(|p| PackageView {
                    balance: fmt_units(p.balance_units),
                    expired: p.expired(at),
                    package: p,
                })
                .collect(),
        })
    }

    /// Alerts, newest first, optionally only in one state.
    pub async fn alerts(&self, state: Option<AlertState>) -> Result<Vec<AlertView>> {
        let rows = sqlx::query(
            "SELECT seq, kind, state, dedup_key, student_id, class_id, package_id, message, created_at, updated_at FROM alerts \
             WHERE school_id = $1 AND ($2 = '' OR state = $2) ORDER BY seq DESC",
        )
        .bind(self.need_school()?)
        .bind(state.map(|s| s.as_str()).unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AlertView {
                    id: r.try_get(0)?,
                    kind: parse_enum(&r.try_get::<String, _>(1)?, AlertKind::parse, "alert kind")?,
                    state: parse_enum(
                        &r.try_get::<String, _>(2)?,
                        AlertState::parse,
                        "alert state",
                    )?,
                    dedup_key: r.try_get(3)?,
                    student_id: r.try_get(4)?,
                    class_id: r.try_get(5)?,
                    package_id: r.try_get(6)?,
                    message: r.try_get(7)?,
                    created_at: from_ms(r.try_get(8)?),
                    updated_at: from_ms(r.try_get(9)?),
                })
            })
            .collect()
    }

    /// Ledger entries in append order, optionally of one student.
    pub async fn entries(&self, student: Option<&str>) -> Result<Vec<StoredEntry>> {
        let rows = sqlx::query(
            "SELECT seq, student_id, kind, package_id, lesson_id, units, amount_cents, idempotency_key, at, actor, note FROM ledger \
             WHERE school_id = $1 AND ($2 = '' OR student_id = $2) ORDER BY seq",
        )
        .bind(self.need_school()?)
        .bind(student.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredEntry {
                    seq: r.try_get(0)?,
                    at: from_ms(r.try_get(8)?),
                    actor: r.try_get(9)?,
                    note: r.try_get(10)?,
                    entry: Entry {
                        student_id: r.try_get(1)?,
                        kind: parse_enum(
                            &r.try_get::<String, _>(2)?,
                            EntryKind::parse,
                            "entry kind",
                        )?,
                        package_id: r.try_get(3)?,
                        lesson_id: r.try_get(4)?,
                        units: r.try_get(5)?,
                        amount_cents: r.try_get(6)?,
                        idempotency_key: r.try_get(7)?,
                    },
                })
            })
            .collect()
    }

    /// Attendance records `(student, lesson, status)`, sorted.
    pub async fn attendance(&self) -> Result<Vec<(String, String, AttendanceStatus)>> {
        let rows = sqlx::query("SELECT student_id, lesson_id, status FROM attendance WHERE school_id = $1 ORDER BY student_id, lesson_id")
            .bind(self.need_school()?)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    parse_enum(
                        &r.try_get::<String, _>(2)?,
                        AttendanceStatus::parse,
                        "status",
                    )?,
                ))
            })
            .collect()
    }

    /// Number of audit rows (for tests and health checks).
    /// The newest check-in events of the school (what each reported check-in did), newest first.
    pub async fn checkin_events(&self, limit: i64) -> Result<Vec<CheckInEventView>> {
        let school = self.need_school()?.to_string();
        let rows = sqlx::query(
            "SELECT event_key, student_id, at, source, camera_id, lesson_id, outcome FROM checkin_events WHERE school_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(&school)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CheckInEventView {
                    event_key: r.try_get(0)?,
                    student_id: r.try_get(1)?,
                    at: from_ms(r.try_get(2)?),
                    source: r.try_get(3)?,
                    camera_id: r.try_get(4)?,
                    lesson_id: r.try_get(5)?,
                    outcome: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Raises a camera-health alert (offline or stale), one per outage: `dedup_key` names the
    /// outage (e.g. `camera:{id}:{since_ms}`), so repeated reports of it are no-ops. Camera
    /// alerts belong to no student (`student_id` is empty). Returns whether it was new.
    pub async fn raise_camera_alert(
        &self,
        camera: &str,
        dedup_key: &str,
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let school = self.need_school()?.to_string();
        let draft = AlertDraft {
            kind: AlertKind::CameraOffline,
            dedup_key: dedup_key.to_string(),
            student_id: String::new(),
            class_id: None,
            package_id: None,
            message: format!("camera {camera}: {message}"),
        };
        let mut raised = Vec::new();
        let mut w = self.write().await?;
        raise_alert(w.conn(), &school, &draft, ms(at), &mut raised).await?;
        w.commit().await?;
        Ok(!raised.is_empty())
    }

    /// Resolves the open camera alerts of `camera` (it is back online); returns how many.
    pub async fn resolve_camera_alerts(&self, camera: &str) -> Result<usize> {
        let school = self.need_school()?.to_string();
        let prefix = format!("camera:{camera}:");
        let rows = sqlx::query(
            "SELECT seq, dedup_key FROM alerts WHERE school_id = $1 AND kind = $2 AND state <> 'resolved'",
        )
        .bind(&school)
        .bind(AlertKind::CameraOffline.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut n = 0;
        for r in rows {
            let key: String = r.try_get(1)?;
            if key.starts_with(&prefix) {
                self.set_alert_state(r.try_get(0)?, AlertState::Resolved, "system")
                    .await?;
                n += 1;
            }
        }
        Ok(n)
    }

    pub async fn audit_count(&self) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COUNT(*) FROM audit_log WHERE school_id = $1")
                .bind(self.need_school()?)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?,
        )
    }
}
