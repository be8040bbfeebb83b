//! rollcall-ledger: the school ledger on SQLite or PostgreSQL (sqlx, runtime queries only).
//!
//! The rules live in `rollcall_domain::ledger` (pure); this crate applies them inside database
//! transactions. Exactly-once effects come from unique constraints (attendance per
//! (student, lesson), ledger idempotency keys, check-in event keys, alert dedup keys) used with
//! `INSERT … ON CONFLICT DO NOTHING RETURNING`: a change is acted upon only when its row was
//! inserted. Every change writes an audit row in the same transaction.

mod audit;
mod checkin;
mod db;
mod finance;
mod group;
mod import;
mod notices;
pub mod outbox;
mod parked;
mod privacy;
mod reports;
mod review;
mod schema;
mod staff;
mod store;
mod views;

pub use audit::{as_actor, current_actor, Actor};
pub use finance::{CashReport, CashRow, RateUsed, TeacherRate, TeachingRow, MAX_RATE_CENTS};
pub use group::GroupCommit;
pub use import::{ImportKind, ImportSummary, RowError};
pub use outbox::{
    GuardianPrefs, NoticeDraft, NoticeKind, NotifySettings, OutboxCounts, OutboxRow, OutboxState,
    QuietHours, RecipientKind, StaffRecipient,
};
pub use parked::{create_scratch_database, drop_scratch_database, ParkedCheckIn};
pub use reports::{
    AttendanceReport, AttendanceRow, ConsumptionReport, ConsumptionRow, HeatCell, OutstandingRow,
};
pub use review::{
    HardNegative, NewReviewItem, ReviewCandidate, ReviewDecision, ReviewItem, ReviewOutcome,
    ReviewState,
};
pub use staff::{ApiTokenView, CampusScope, NewStaff, Role, StaffAccount, StaffSession};
pub use store::{
    parse_weekday, CancelledLessonView, ClassEdit, ClassEdited, ClassKind, HolidayAdded,
    HolidayView, LessonCancelled, LessonMove, LessonMoved, NewSeries, SeriesChange, SeriesView,
    Transferred, MAX_CAPACITY,
};
pub use store::{
    AlertView, AuditRow, Backend, BalanceView, CheckIn, CheckInEventView, CheckInResult,
    FinalizeReport, NewClass, NewGuardian, NewLesson, NewOrder, NewPackage, NewPayment, NewStudent,
    OrderLine, OrderView, PackageView, PaymentView, RefundPolicyView, RefundRequestView,
    ReminderReport, Store, StoredEntry, BALANCES_PER_QUERY, FEE_REMINDER_DAYS,
    LESSON_REMINDER_HOUR,
};
pub use store::{
    AttendanceCorrection, AttendanceLine, LeaveState, LeaveView, LessonBrief, MakeupBooking,
    DEFAULT_MAKEUP_LIMIT, MAKEUP_LIMIT_SETTING,
};
pub use store::{
    AttendanceRecord, EnrolledClass, ExpiryMoved, GuardianDetail, LeftSchool, RegistrationConsent,
    Resumed, StudentState, StudentStatus, MAX_GUARDIANS,
};
pub use views::{
    BoardLesson, BoardStudent, CameraView, ClassView, ConsentView, GuardianView, LessonView,
    StudentView,
};

/// Errors at the crate boundary.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The database refused the change because it breaks an integrity rule (a record with the
    /// same key exists, a referenced record does not, …).
    #[error("constraint ({kind}): {message}")]
    Constraint {
        kind: ConstraintKind,
        message: String,
    },
    /// Any other database error (a query or schema mismatch): retrying will not help.
    #[error("database: {0}")]
    Database(String),
    /// From the check-in path's own SQLite connection.
    #[error("database (sqlite): {0}")]
    Sqlite(String),
    #[error("unknown {entity} {id:?}")]
    NotFound { entity: &'static str, id: String },
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("package {0} is not refundable under the school's rule ({1})")]
    NotRefundable(String, String),
    #[error("import refused, nothing imported: {}", fmt_row_errors(.0))]
    Import(Vec<RowError>),
    #[error("csv: {0}")]
    Csv(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The change lost a race with another decision (e.g. a review item already decided).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or cannot write now (connection lost, disk full, server
    /// shutting down); the same change may succeed later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database is busy (locked, serialization failure, deadlock victim); retry soon.
    #[error("database busy: {0}")]
    Busy(String),
}

/// What a caller may do about a [`LedgerError`]: [`LedgerError::class`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The database is down, unreachable or cannot write (disk full): retrying the same change
    /// later succeeds once it is back; the change itself is fine.
    Unavailable,
    /// A momentary refusal (busy, locked, serialization failure, deadlock, lost race): retry
    /// soon, a bounded number of times.
    Transient,
    /// Retrying cannot change the answer (unknown student, invalid input, constraint broken,
    /// corrupt row).
    Permanent,
}

impl LedgerError {
    /// Classifies the error for retrying (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            LedgerError::Unavailable(_) | LedgerError::Io(_) => ErrorClass::Unavailable,
            LedgerError::Busy(_) | LedgerError::Conflict(_) => ErrorClass::Transient,
            LedgerError::Sqlite(_)
            | LedgerError::Constraint { .. }
            | LedgerError::Database(_)
            | LedgerError::NotFound { .. }
            | LedgerError::Invalid { .. }
            | LedgerError::NotRefundable(..)
            | LedgerError::Import(_)
            | LedgerError::Csv(_)
            | LedgerError::Corrupt(_) => ErrorClass::Permanent,
        }
    }

    /// [`ErrorClass::Unavailable`] or [`ErrorClass::Transient`].
    pub fn is_retryable(&self) -> bool {
        self.class() != ErrorClass::Permanent
    }
}

/// Which integrity rule the database enforced ([`LedgerError::Constraint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintKind {
    Unique,
    ForeignKey,
    NotNull,
    Check,
    Other,
}

impl std::fmt::Display for ConstraintKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConstraintKind::Unique => "unique",
            ConstraintKind::ForeignKey => "foreign key",
            ConstraintKind::NotNull => "not null",
            ConstraintKind::Check => "check",
            ConstraintKind::Other => "other",
        })
    }
}

/// The driver's error, said as what happened: no crate above the ledger sees sqlx. SQLite
/// result codes (primary, the low byte of an extended code) and PostgreSQL SQLSTATEs decide
/// between [`LedgerError::Unavailable`], [`LedgerError::Busy`], [`LedgerError::Constraint`]
/// and [`LedgerError::Database`].
impl From<sqlx::Error> for LedgerError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => LedgerError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) => match db_code_class(db.code().as_deref()) {
                ErrorClass::Unavailable => LedgerError::Unavailable(db.message().to_string()),
                ErrorClass::Transient => LedgerError::Busy(db.message().to_string()),
                ErrorClass::Permanent => {
                    let kind = match db.kind() {
                        sqlx::error::ErrorKind::UniqueViolation => Some(ConstraintKind::Unique),
                        sqlx::error::ErrorKind::ForeignKeyViolation => {
                            Some(ConstraintKind::ForeignKey)
                        }
                        sqlx::error::ErrorKind::NotNullViolation => Some(ConstraintKind::NotNull),
                        sqlx::error::ErrorKind::CheckViolation => Some(ConstraintKind::Check),
                        _ if db.code().is_some_and(|c| c.starts_with("23")) => {
                            Some(ConstraintKind::Other)
                        }
                        _ => None,
                    };
                    match kind {
                        Some(kind) => LedgerError::Constraint {
                            kind,
                            message: db.message().to_string(),
                        },
                        None => LedgerError::Database(e.to_string()),
                    }
                }
            },
            _ => LedgerError::Database(e.to_string()),
        }
    }
}

/// The class of a database error code: a SQLite result code (decimal, extended or primary) or
/// a PostgreSQL SQLSTATE.
pub(crate) fn db_code_class(code: Option<&str>) -> ErrorClass {
    let Some(code) = code else {
        return ErrorClass::Permanent;
    };
    if let Ok(n) = code.parse::<i64>() {
        // SQLite: BUSY 5, LOCKED 6 → transient; NOMEM 7, IOERR 10, FULL 13, CANTOPEN 14,
        // PROTOCOL 15 → unavailable
        return match n & 0xff {
            5 | 6 => ErrorClass::Transient,
            7 | 10 | 13 | 14 | 15 => ErrorClass::Unavailable,
            _ => ErrorClass::Permanent,
        };
    }
    match code {
        // serialization failure, deadlock, lock not available
        "40001" | "40P01" | "55P03" => ErrorClass::Transient,
        // connection exceptions, insufficient resources (disk full, out of memory, too many
        // connections), operator intervention (shutdown, crash, cannot connect now)
        c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => {
            ErrorClass::Unavailable
        }
        _ => ErrorClass::Permanent,
    }
}

impl LedgerError {
    /// The database refused the write because a record with the same key exists. Callers map
    /// it without knowing the database driver (the API answers 409 `already_exists`).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            LedgerError::Constraint {
                kind: ConstraintKind::Unique,
                ..
            }
        )
    }

    /// The database refused the write because a record it refers to does not exist.
    pub fn is_foreign_key_violation(&self) -> bool {
        matches!(
            self,
            LedgerError::Constraint {
                kind: ConstraintKind::ForeignKey,
                ..
            }
        )
    }
}

fn fmt_row_errors(e: &[RowError]) -> String {
    e.iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

pub type Result<T, E = LedgerError> = std::result::Result<T, E>;
