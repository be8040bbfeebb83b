//! Bottom layer of the store: stored-value parsing, audit rows, existence checks, the
//! per-student lock and appending ledger entries (time conversion is [`crate::db`]'s,
//! re-exported here). Uses no feature module.

pub(crate) use crate::db::{from_ms, ms};
use crate::{LedgerError, Result};
use rollcall_domain::ledger::*;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::AnyConnection;

pub(super) fn parse_json<T: for<'de> Deserialize<'de>>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| LedgerError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn parse_enum<T>(s: &str, f: fn(&str) -> Option<T>, what: &str) -> Result<T> {
    f(s).ok_or_else(|| LedgerError::Corrupt(format!("{what}: {s:?}")))
}

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
    crate::audit::write_audit(
        &mut crate::db::AnyDb(c),
        school,
        &[crate::audit::AuditEntry {
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

pub(super) fn check_id(field: &'static str, v: &str) -> Result<()> {
    // a new id: no path separators or dot segments either (ids name directories)
    rollcall_domain::ids::check_new_id(v).map_err(|e| LedgerError::Invalid {
        field,
        message: e.to_string(),
    })
}

/// Longest name a person may give (characters).
pub(crate) const MAX_NAME_CHARS: usize = 200;

/// A name a person reads (student, guardian, class, campus): not blank, at most
/// [`MAX_NAME_CHARS`] characters, no control characters.
pub(super) fn check_name(field: &'static str, v: &str) -> Result<()> {
    let invalid = |message: String| Err(LedgerError::Invalid { field, message });
    if v.trim().is_empty() {
        return invalid("must not be empty".into());
    }
    let n = v.chars().count();
    if n > MAX_NAME_CHARS {
        return invalid(format!("{n} characters; at most {MAX_NAME_CHARS}"));
    }
    if v.chars().any(char::is_control) {
        return invalid("must not contain control characters".into());
    }
    Ok(())
}

pub(super) async fn exists(
    c: &mut AnyConnection,
    sql: &str,
    school: &str,
    id: &str,
) -> Result<bool> {
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
pub(super) async fn lock_student(c: &mut AnyConnection, school: &str, student: &str) -> Result<()> {
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
