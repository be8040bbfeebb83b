//! The notices of the ledger's causes: an arrival, an absence, a raised alert (the review queue
//! writes its own `review_needed` draft).

use super::kinds::NoticeKind;
use crate::db::from_ms;
use chrono::{DateTime, Utc};
use rollcall_domain::ledger::{
    available_units, fmt_units, AlertDraft, AlertKind, AttendanceStatus, BookedLesson,
    PackageState, Units,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A notice to write to the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeDraft {
    /// Deterministic id naming the cause, e.g. `absence:{student}:{lesson}`.
    pub notice_id: String,
    pub kind: NoticeKind,
    /// The student concerned (guardians are looked up from it); `None` for staff-only notices.
    pub student_id: Option<String>,
    pub class_id: Option<String>,
    /// Template parameters (the ledger adds `student_name`, `class_name`, `local_time`,
    /// `local_date`).
    pub params: Value,
    /// When the cause happened: quiet hours are judged at this instant.
    pub at: DateTime<Utc>,
}

/// Arrival notice for a recorded check-in: `used` units were deducted for it and `left` are
/// available to the student right after (negative: owed), so that the guardians read "1 lesson
/// used, 7 left".
pub fn arrival(
    student: &str,
    lesson: &BookedLesson,
    status: AttendanceStatus,
    at: DateTime<Utc>,
    used: Units,
    left: Units,
) -> NoticeDraft {
    NoticeDraft {
        notice_id: format!("arrival:{student}:{}", lesson.lesson_id),
        kind: NoticeKind::Arrival,
        student_id: Some(student.into()),
        class_id: Some(lesson.class_id.clone()),
        params: json!({
            "lesson_id": lesson.lesson_id,
            "status": status.as_str(),
            "lesson_start": lesson.start,
            "used_units": used,
            "left_units": left,
        }),
        at,
    }
}

/// Absence notice (student missing at a lesson). Sent by [`crate::Store::notify_missing`] at lesson
/// start + late grace, and again (same id: deduplicated) by `finalize` for an unexcused absence.
pub fn absence(student: &str, lesson: &BookedLesson, at: DateTime<Utc>) -> NoticeDraft {
    NoticeDraft {
        notice_id: format!("absence:{student}:{}", lesson.lesson_id),
        kind: NoticeKind::Absence,
        student_id: Some(student.into()),
        class_id: Some(lesson.class_id.clone()),
        params: json!({"lesson_id": lesson.lesson_id, "lesson_start": lesson.start}),
        at,
    }
}

/// The evening-before reminder of a booked lesson (`date`, `time`: its local start).
pub fn lesson_reminder(
    student: &str,
    lesson: &BookedLesson,
    date: &str,
    time: &str,
    at: DateTime<Utc>,
) -> NoticeDraft {
    NoticeDraft {
        notice_id: format!("reminder:{student}:{}", lesson.lesson_id),
        kind: NoticeKind::LessonReminder,
        student_id: Some(student.into()),
        class_id: Some(lesson.class_id.clone()),
        params: json!({"lesson_id": lesson.lesson_id, "lesson_start": lesson.start,
                       "lesson_date": date, "lesson_time": time}),
        at,
    }
}

/// The reminder of instalment `n` of `order` due on `due_on` (a local date), `amount` as text.
pub fn fee_due(
    student: &str,
    order: &str,
    n: i64,
    due_on: &str,
    amount: &str,
    at: DateTime<Utc>,
) -> NoticeDraft {
    NoticeDraft {
        notice_id: format!("fee:{order}:{n}"),
        kind: NoticeKind::FeeDue,
        student_id: Some(student.into()),
        class_id: None,
        params: json!({"order_id": order, "instalment": n, "due_on": due_on, "amount": amount}),
        at,
    }
}

/// Whether the notice of alert `a` tells the student's balance, so that [`alert_notice`] needs
/// the student's packages (low balance, expiring package).
pub(crate) fn needs_packages(a: &AlertDraft) -> bool {
    matches!(a.kind, AlertKind::LowBalance | AlertKind::ExpiringPackage)
}

/// The notice of alert `a`, raised at `at` (ms).
///
/// `packages`: the student's packages and overdraft as they stand right after the change that
/// raised the alert (a batch of check-ins has written later changes already, so the caller
/// passes what it computed, or reads them when it has not); needed only when
/// [`needs_packages`], and `None` is then read as no packages.
pub(crate) fn alert_notice(
    a: &AlertDraft,
    at: i64,
    packages: Option<(&[PackageState], Units)>,
) -> NoticeDraft {
    let at = from_ms(at);
    let (kind, mut params) = match a.kind {
        AlertKind::AbsenceStreak => (NoticeKind::AbsenceStreak, json!({})),
        AlertKind::LowBalance => (NoticeKind::LowBalance, json!({})),
        AlertKind::ExpiringPackage => (NoticeKind::ExpiringPackage, json!({})),
        AlertKind::ZeroBalanceCheckin => (NoticeKind::ZeroBalance, json!({})),
        AlertKind::CameraOffline => (
            NoticeKind::CameraOffline,
            json!({"camera": a.dedup_key.split(':').nth(1).unwrap_or("")}),
        ),
        AlertKind::CheckInFailed => (NoticeKind::CheckInFailed, json!({})),
        // for the staff: the message says who and how many
        AlertKind::ManyMakeups => (NoticeKind::ReviewNeeded, json!({})),
    };
    params["message"] = json!(a.message);
    params["package_id"] = json!(a.package_id);
    if matches!(kind, NoticeKind::LowBalance | NoticeKind::ExpiringPackage) {
        let (pkgs, od) = packages.unwrap_or((&[], 0));
        params["left"] = json!(fmt_units(available_units(pkgs, od, at)));
        if let Some(p) = pkgs
            .iter()
            .find(|p| Some(&p.package_id) == a.package_id.as_ref())
        {
            params["left"] = json!(fmt_units(p.balance_units));
            params["expires_at"] = json!(p.expires_at);
        }
    }
    NoticeDraft {
        notice_id: format!("alert:{}", a.dedup_key),
        kind,
        student_id: (!a.student_id.is_empty()).then(|| a.student_id.clone()),
        class_id: a.class_id.clone(),
        params,
        at,
    }
}

/// The notice that lesson `lesson` of `class`, booked for `student`, was cancelled or moved
/// (`change`: `cancelled` or `moved`); `was`: its local date and time, `now_at`: the new ones
/// of a moved lesson; `reason` as staff gave it.
#[allow(clippy::too_many_arguments)]
pub fn lesson_changed(
    student: &str,
    class: &str,
    lesson: &str,
    change: &str,
    was: (&str, &str),
    now_at: Option<(&str, &str)>,
    reason: &str,
    at: DateTime<Utc>,
) -> NoticeDraft {
    let (new_date, new_time) = now_at.unwrap_or(("", ""));
    NoticeDraft {
        // one notice per change: a lesson moved twice tells both moves
        notice_id: format!(
            "lesson:{change}:{student}:{lesson}:{}",
            at.timestamp_millis()
        ),
        kind: NoticeKind::LessonChanged,
        student_id: Some(student.into()),
        class_id: Some(class.into()),
        params: json!({"lesson_id": lesson, "change": change,
                       "lesson_date": was.0, "lesson_time": was.1,
                       "new_date": new_date, "new_time": new_time, "reason": reason}),
        at,
    }
}
