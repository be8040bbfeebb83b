//! Steps 6–9 of a round: one statement batch writing the deductions (unless written first), the
//! arrival notices of the new attendance rows, the alerts (one per dedup key), the check-in
//! events and the audit rows; then the audit rows and notices of the alerts that were new.

use super::decide::{Decisions, Raised};
use super::round::{first_texts, AttendanceRead, Matched};
use super::{Item, Refusal};
use crate::audit::{audit_stmts, write_audit, AuditEntry};
use crate::db::{ms, values_marks, Arg, Db, Stmt};
use crate::notices::{alert_notice, arrival, enqueue_with, outbox_stmts, NoticeDraft, NotifyCtx};
use crate::Result;
use chrono::{DateTime, Utc};
use rollcall_domain::ledger::*;
use serde_json::json;
use std::collections::HashSet;

/// The statements of steps 6–9, and where the ones whose returned rows matter are.
pub(super) struct WriteBatch {
    stmts: Vec<Stmt>,
    deductions_at: Option<usize>,
    alerts_at: Option<usize>,
    events_at: usize,
}

/// Builds the round's write statements: the deductions (`deductions`, when not written first),
/// the arrival notices of the new attendance rows (outbox rows created at `now`), the alerts
/// of `decided` (deduplicated here by key, first kept), the check-in events and one audit row
/// per change (attendance and deduction, or the visit).
#[allow(clippy::too_many_arguments)]
pub(super) fn build_writes(
    school: &str,
    items: &[Item],
    matched: &Matched,
    read: &AttendanceRead,
    decided: &mut Decisions,
    deductions: Option<Stmt>,
    notify: Option<&NotifyCtx>,
    now: DateTime<Utc>,
) -> Result<WriteBatch> {
    let mut stmts: Vec<Stmt> = Vec::with_capacity(6);
    let deductions_at = deductions.map(|st| {
        stmts.push(st);
        stmts.len() - 1
    });
    // 6. Arrival notices of the new attendance rows.
    if let Some(ctx) = notify {
        let arrivals: Vec<NoticeDraft> = (0..items.len())
            .filter(|&i| read.new[i])
            .filter_map(|i| {
                matched[i].as_ref().map(|(l, status)| {
                    arrival(
                        &items[i].ci.student_id,
                        l,
                        *status,
                        items[i].ci.at,
                        decided.before[i] - decided.avail[i],
                        decided.avail[i],
                    )
                })
            })
            .collect();
        stmts.extend(outbox_stmts(
            school,
            ctx,
            &arrivals,
            &read.recipients,
            ms(now),
        )?);
    }
    // 7. Alerts, one per dedup key (each new one is then audited and notified).
    let mut seen = HashSet::new();
    decided
        .raised
        .retain(|r| seen.insert(r.draft.dedup_key.clone()));
    let alerts_at = alerts_stmt(school, items, &decided.raised).map(|st| {
        stmts.push(st);
        stmts.len() - 1
    });
    // 8. The check-in events (one whose key is taken rolls the round back).
    stmts.push(events_stmt(school, items, matched, &decided.outcomes));
    let events_at = stmts.len() - 1;
    // 9. One audit row per change.
    stmts.extend(audit_stmts(
        school,
        &change_audits(items, matched, &decided.outcomes),
    ));
    Ok(WriteBatch {
        stmts,
        deductions_at,
        alerts_at,
        events_at,
    })
}

impl WriteBatch {
    /// Sends the statements (one round trip on PostgreSQL): refused when an event key was
    /// taken (fewer events inserted than the round's `n` check-ins) or a deduction key was
    /// (fewer of the `deductions` inserted), and the round must be rolled back; else the dedup
    /// keys of the alerts that were new.
    pub(super) async fn send(self, db: &mut dyn Db, n: usize, deductions: usize) -> Result<Sent> {
        let got = db.fetch_many(self.stmts).await?;
        if got[self.events_at].len() < n {
            return Ok(Sent::Refused(Refusal::EventKeyTaken));
        }
        if let Some(k) = self.deductions_at {
            if first_texts(&got[k])?.len() < deductions {
                return Ok(Sent::Refused(Refusal::DeductionKeyTaken));
            }
        }
        let new_alerts = match self.alerts_at {
            Some(k) => first_texts(&got[k])?,
            None => HashSet::new(),
        };
        Ok(Sent::Written { new_alerts })
    }
}

/// What sending a [`WriteBatch`] came to.
pub(super) enum Sent {
    /// Written: the dedup keys of the alerts that were new.
    Written { new_alerts: HashSet<String> },
    /// A key was taken: the round must be rolled back.
    Refused(Refusal),
}

/// The statement inserting the raised alerts (`ON CONFLICT DO NOTHING RETURNING` their dedup
/// keys: an alert is acted upon only when new); `None` when there are none.
fn alerts_stmt(school: &str, items: &[Item], raised: &[Raised]) -> Option<Stmt> {
    if raised.is_empty() {
        return None;
    }
    let sql = format!(
        "INSERT INTO alerts (school_id, dedup_key, kind, student_id, class_id, package_id, message, state, created_at, updated_at, data_json) VALUES {} \
         ON CONFLICT (school_id, dedup_key) DO NOTHING RETURNING dedup_key",
        (0..raised.len())
            .map(|r| {
                let b = 1 + r * 9;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, 'open', ${}, ${}, ${})",
                    b,
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 7,
                    b + 8
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut args: Vec<Arg> = Vec::with_capacity(raised.len() * 9);
    for r in raised {
        let a = &r.draft;
        args.extend([
            school.into(),
            (&a.dedup_key).into(),
            a.kind.as_str().into(),
            (&a.student_id).into(),
            (&a.class_id).into(),
            (&a.package_id).into(),
            (&a.message).into(),
            items[r.item].at.into(),
            crate::store::alert_data_json(a).into(),
        ]);
    }
    Some(Stmt::new(sql, args, 1))
}

/// The statement inserting the round's check-in events (`RETURNING` their keys: one missing
/// was stored by another writer meanwhile).
fn events_stmt(
    school: &str,
    items: &[Item],
    matched: &Matched,
    outcomes: &[CheckInOutcome],
) -> Stmt {
    let sql = format!(
        "INSERT INTO checkin_events (school_id, event_key, student_id, at, source, camera_id, lesson_id, outcome) VALUES {} \
         ON CONFLICT (school_id, event_key) DO NOTHING RETURNING event_key",
        values_marks(items.len(), 8, 1)
    );
    let mut args: Vec<Arg> = Vec::with_capacity(items.len() * 8);
    for (i, it) in items.iter().enumerate() {
        let tag = match &outcomes[i] {
            CheckInOutcome::Recorded { .. } => "recorded",
            CheckInOutcome::AlreadyRecorded { .. } => "already_recorded",
            CheckInOutcome::Unscheduled => "unscheduled",
            CheckInOutcome::DuplicateEvent => "duplicate",
        };
        args.extend([
            school.into(),
            (&it.key).into(),
            (&it.ci.student_id).into(),
            it.at.into(),
            it.ci.source.as_str().into(),
            (&it.ci.camera_id).into(),
            matched[i].as_ref().map(|(l, _)| l.lesson_id.clone()).into(),
            tag.into(),
        ]);
    }
    Stmt::new(sql, args, 1)
}

/// One audit row per change of the round: a check-in that recorded attendance (with its
/// deduction) or an unscheduled visit; an attendance recorded before changes nothing.
fn change_audits<'a>(
    items: &[Item],
    matched: &Matched,
    outcomes: &[CheckInOutcome],
) -> Vec<AuditEntry<'a>> {
    let mut audits = Vec::new();
    for (i, it) in items.iter().enumerate() {
        if matches!(outcomes[i], CheckInOutcome::AlreadyRecorded { .. }) {
            continue;
        }
        let lesson = matched[i].as_ref().map(|(l, _)| l.lesson_id.as_str());
        audits.push(AuditEntry {
            actor: it.ci.source.as_str().into(),
            action: if lesson.is_some() {
                "check_in"
            } else {
                "visit"
            },
            entity: "attendance",
            entity_id: format!("{}/{}", lesson.unwrap_or("-"), it.ci.student_id),
            before: None,
            after: Some(json!({
                "event": it.key, "camera": it.ci.camera_id, "at": it.ci.at, "outcome": outcomes[i]
            })),
            at: it.at,
        });
    }
    audits
}

/// After the writes: the audit row and notice (outbox rows created at `now`) of each alert that
/// was new. Returns the new alerts' dedup keys per check-in.
pub(super) async fn audit_and_notify_alerts(
    db: &mut dyn Db,
    school: &str,
    items: &[Item],
    raised: &[Raised],
    new_alerts: &HashSet<String>,
    notify: Option<&NotifyCtx>,
    now: DateTime<Utc>,
) -> Result<Vec<Vec<String>>> {
    let mut alerts: Vec<Vec<String>> = vec![Vec::new(); items.len()];
    if new_alerts.is_empty() {
        return Ok(alerts);
    }
    let mut audits: Vec<AuditEntry> = Vec::new();
    let mut notices = Vec::new();
    for r in raised
        .iter()
        .filter(|r| new_alerts.contains(&r.draft.dedup_key))
    {
        let at = items[r.item].at;
        audits.push(AuditEntry {
            actor: "rules".into(),
            action: "raise",
            entity: "alert",
            entity_id: r.draft.dedup_key.clone(),
            before: None,
            after: Some(json!(r.draft)),
            at,
        });
        alerts[r.item].push(r.draft.dedup_key.clone());
        let snapshot = r.packages.as_ref().map(|(p, od)| (p.as_slice(), *od));
        notices.push(alert_notice(&r.draft, at, snapshot));
    }
    enqueue_with(db, school, notify, &notices, now).await?;
    write_audit(db, school, &audits).await?;
    Ok(alerts)
}
