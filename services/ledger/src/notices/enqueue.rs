//! Writing notices on the caller's connection, inside the transaction of their cause.

use super::compose::{outbox_stmts, recipients_stmt, NotifyCtx, Recipients};
use super::drafts::{absence, alert_notice, NoticeDraft};
use crate::db::{ms, AnyDb, Db};
use crate::{LedgerError, Result};
use chrono::{DateTime, Utc};
use rollcall_domain::ledger::{AlertDraft, AttendanceStatus, BookedLesson, PackageState, Units};
use sqlx::AnyConnection;

/// Writes the rows of one notice on the caller's connection (inside its transaction): one row per
/// recipient and channel, by the school's settings and each guardian's preferences, created at
/// `now` (the store's clock). A row whose delivery key exists is skipped (replays insert
/// nothing). Returns the rows inserted; 0 when notifications are off for the school.
pub async fn enqueue_at(
    c: &mut AnyConnection,
    school: &str,
    d: &NoticeDraft,
    now: DateTime<Utc>,
) -> Result<usize> {
    enqueue_many(&mut AnyDb(c), school, std::slice::from_ref(d), now).await
}

/// Writes the absence notice of a finalised absence; excused absences (approved leave: the
/// guardians asked for it) get none.
pub(crate) async fn enqueue_absence(
    c: &mut AnyConnection,
    school: &str,
    student: &str,
    lesson: &BookedLesson,
    status: AttendanceStatus,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<usize> {
    if status != AttendanceStatus::Absent {
        return Ok(0);
    }
    enqueue_at(c, school, &absence(student, lesson, at), now).await
}

/// Writes the notice of a newly raised alert (same transaction as the alert row); `packages` as
/// [`alert_notice`] takes them.
pub(crate) async fn enqueue_alert(
    c: &mut AnyConnection,
    school: &str,
    a: &AlertDraft,
    at: i64,
    packages: Option<(&[PackageState], Units)>,
    now: DateTime<Utc>,
) -> Result<usize> {
    let draft = alert_notice(a, at, packages);
    enqueue_many(&mut AnyDb(c), school, std::slice::from_ref(&draft), now).await
}

/// [`enqueue`] for several notices: the school's settings are read once for all of them (a
/// batch of check-ins reads them once). Returns the rows inserted.
pub(crate) async fn enqueue_many(
    c: &mut dyn Db,
    school: &str,
    ds: &[NoticeDraft],
    now: DateTime<Utc>,
) -> Result<usize> {
    if ds.is_empty() {
        return Ok(0);
    }
    let r = c
        .fetch(
            "SELECT s.tz_offset_minutes, s.policy_json, n.settings_json FROM schools s LEFT JOIN notify_settings n ON n.school_id = s.id WHERE s.id = $1",
            vec![school.into()],
        )
        .await?
        .pop()
        .ok_or_else(|| LedgerError::NotFound { entity: "school", id: school.into() })?;
    let ctx = NotifyCtx::new(r.int(0)?, r.text(1)?, r.opt_text(2)?)?;
    enqueue_with(c, school, ctx.as_ref(), ds, now).await
}

/// [`enqueue_many`] with the school's settings already read (`None`: notifications off): one
/// statement reads the notices' recipients, one (per 256 rows) writes their rows (created at
/// `now`).
pub(crate) async fn enqueue_with(
    c: &mut dyn Db,
    school: &str,
    ctx: Option<&NotifyCtx>,
    ds: &[NoticeDraft],
    now: DateTime<Utc>,
) -> Result<usize> {
    let Some(ctx) = ctx else {
        return Ok(0);
    };
    let students: Vec<&str> = ds.iter().filter_map(|d| d.student_id.as_deref()).collect();
    let classes: Vec<&str> = ds.iter().filter_map(|d| d.class_id.as_deref()).collect();
    let recipients = match recipients_stmt(school, &students, &classes) {
        Some(st) => Recipients::parse(c.fetch(&st.sql, st.args).await?)?,
        None => Recipients::default(),
    };
    let mut inserted = 0;
    for st in outbox_stmts(school, ctx, ds, &recipients, ms(now))? {
        inserted += c.fetch(&st.sql, st.args).await?.len();
    }
    Ok(inserted)
}
