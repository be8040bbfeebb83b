//! rollcall-ledger: the school ledger on SQLite or PostgreSQL (sqlx, runtime queries only).
//!
//! The rules live in `rollcall_domain::ledger` (pure); this crate applies them inside database
//! transactions. Exactly-once effects come from unique constraints (attendance per
//! (student, lesson), ledger idempotency keys, check-in event keys, alert dedup keys) used with
//! `INSERT … ON CONFLICT DO NOTHING RETURNING`: a change is acted upon only when its row was
//! inserted. Every change writes an audit row in the same transaction.

mod bench;
mod checkin;
mod db;
mod group;
mod import;
pub mod outbox;
mod privacy;
mod reports;
mod schema;
mod staff;
mod store;
mod views;

pub use bench::{
    bench_checkins, bench_checkins_grouped, bench_checkins_paced, bench_checkins_with, BenchReport,
};
pub use group::GroupCommit;
pub use import::{ImportKind, ImportSummary, RowError};
pub use outbox::{
    GuardianPrefs, NoticeDraft, NoticeKind, NotifySettings, OutboxCounts, OutboxRow, OutboxState,
    QuietHours, RecipientKind, StaffRecipient,
};
pub use reports::*;
pub use staff::*;
pub use store::*;
pub use views::*;

/// Errors at the crate boundary.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
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
}

impl LedgerError {
    /// The database refused the write because a record with the same key exists. Callers map
    /// it without knowing the database driver (the API answers 409 `already_exists`).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, LedgerError::Db(sqlx::Error::Database(d))
            if d.kind() == sqlx::error::ErrorKind::UniqueViolation)
    }

    /// The database refused the write because a record it refers to does not exist.
    pub fn is_foreign_key_violation(&self) -> bool {
        matches!(self, LedgerError::Db(sqlx::Error::Database(d))
            if d.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
    }
}

fn fmt_row_errors(e: &[RowError]) -> String {
    e.iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

pub type Result<T, E = LedgerError> = std::result::Result<T, E>;
