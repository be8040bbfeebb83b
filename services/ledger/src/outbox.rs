//! Transactional outbox for parent and staff notifications (issue 8).
//!
//! Every notice is one row per (recipient, channel) in `outbox`, written by [`enqueue`] inside the
//! ledger transaction that causes it (a check-in, an absence, an alert), so a notice exists if and
//! only if its cause committed. A notice has a deterministic id naming its cause
//! (`arrival:{student}:{lesson}`, `absence:{student}:{lesson}`, `alert:{dedup_key}`,
//! `review:{item}`); each row's `delivery_key` is `{notice_id}/{recipient_kind}:{recipient}/{channel}`
//! with a UNIQUE constraint, so a replayed cause inserts nothing, and the key is the provider's
//! idempotency key. The ledger stores the event kind and JSON parameters; `rollcall-notify`
//! renders them per language and delivers them (claim with a lease, send, mark sent, retry with
//! backoff, dead-letter).
//!
//! Notifications are off for a school until [`Store::set_notify_settings`] enables them.

use crate::db::{list_marks, AnyDb, Arg, Db, Stmt};
use crate::store::{from_ms, load_packages_of, ms, Store};
use crate::{LedgerError, Result};
use chrono::{DateTime, Duration, Utc};
use rollcall_domain::ledger::{
    available_units, fmt_units, AlertDraft, AlertKind, AttendanceStatus, BookedLesson,
    PackageState, SchoolPolicy, Units,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($var),+ }
        impl $name {
            pub fn as_str(&self) -> &'static str { match self { $($name::$var => $s),+ } }
            pub fn parse(s: &str) -> Option<$name> { match s { $($s => Some($name::$var),)+ _ => None } }
            pub const ALL: &'static [$name] = &[$($name::$var),+];
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

str_enum!(
    /// What a notice is about (the template to render).
    NoticeKind { Arrival => "arrival", Absence => "absence", AbsenceStreak => "absence_streak",
                 LowBalance => "low_balance", ExpiringPackage => "expiring_package",
                 ZeroBalance => "zero_balance", ReviewNeeded => "review_needed",
                 CameraOffline => "camera_offline", CheckInFailed => "check_in_failed" }
);
str_enum!(
    /// Life cycle of an outbox row.
    OutboxState { Pending => "pending", Sent => "sent", Dead => "dead" }
);
str_enum!(
    /// Who a row goes to.
    RecipientKind { Guardian => "guardian", Staff => "staff" }
);

/// Channels a recipient may ask for. `sms` and `wechat` go through the webhook gateway.
pub const CHANNELS: &[&str] = &["sms", "wechat", "webhook", "email", "log"];

impl NoticeKind {
    /// Whether guardians and staff receive this kind (before preferences).
    pub fn audience(&self) -> (bool, bool) {
        use NoticeKind::*;
        match self {
            Arrival | Absence | LowBalance | ExpiringPackage | ZeroBalance => (true, false),
            AbsenceStreak => (true, true),
            ReviewNeeded | CameraOffline | CheckInFailed => (false, true),
        }
    }
}

/// Quiet hours in the school's local time, `"HH:MM"` each; `start > end` spans midnight,
/// `start == end` is no quiet hours. Notices caused inside them are deferred to `end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    pub start: String,
    pub end: String,
}

fn hhmm(field: &'static str, s: &str) -> Result<i64> {
    let bad = || LedgerError::Invalid {
        field,
        message: format!("{s:?} is not HH:MM"),
    };
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..24).contains(&h) || !(0..60).contains(&m) || s.len() != 5 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl QuietHours {
    pub fn validate(&self) -> Result<()> {
        hhmm("quiet_hours.start", &self.start)?;
        hhmm("quiet_hours.end", &self.end)?;
        Ok(())
    }

    /// When a notice caused at `at` may be sent: `at` itself outside quiet hours, else the end
    /// of the quiet period. `tz_offset_minutes` is the school's offset from UTC.
    pub fn release_at(&self, at: DateTime<Utc>, tz_offset_minutes: i64) -> Result<DateTime<Utc>> {
        let (s, e) = (
            hhmm("quiet_hours.start", &self.start)?,
            hhmm("quiet_hours.end", &self.end)?,
        );
        let local = at + Duration::minutes(tz_offset_minutes);
        let day_ms = local.timestamp_millis().rem_euclid(86_400_000);
        let minute = day_ms / 60_000;
        let midnight = local - Duration::milliseconds(day_ms);
        let quiet_end_local = if s == e {
            return Ok(at);
        } else if s < e {
            if minute >= s && minute < e {
                midnight + Duration::minutes(e)
            } else {
                return Ok(at);
            }
        } else if minute >= s {
            midnight + Duration::days(1) + Duration::minutes(e)
        } else if minute < e {
            midnight + Duration::minutes(e)
        } else {
            return Ok(at);
        };
        Ok(quiet_end_local - Duration::minutes(tz_offset_minutes))
    }
}

/// A staff member who receives staff notices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffRecipient {
    pub id: String,
    /// One of [`CHANNELS`].
    pub channel: String,
    /// Phone, e-mail address or gateway id, per channel.
    pub address: String,
    #[serde(default = "default_language")]
    pub language: String,
    /// Kinds this person receives; `None`: every staff kind.
    #[serde(default)]
    pub events: Option<Vec<NoticeKind>>,
}

fn default_language() -> String {
    "zh-CN".into()
}

/// Per-school notification settings (stored in `notify_settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifySettings {
    /// Off: no outbox rows are written.
    pub enabled: bool,
    #[serde(default)]
    pub staff: Vec<StaffRecipient>,
    /// Channels of guardians with no preference of their own.
    #[serde(default = "default_channels")]
    pub default_channels: Vec<String>,
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// Absence notices skip quiet hours.
    #[serde(default)]
    pub urgent_absence: bool,
}

fn default_channels() -> Vec<String> {
    vec!["sms".into()]
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            enabled: false,
            staff: Vec::new(),
            default_channels: default_channels(),
            quiet_hours: None,
            urgent_absence: false,
        }
    }
}

fn check_channel(field: &'static str, c: &str) -> Result<()> {
    if CHANNELS.contains(&c) {
        Ok(())
    } else {
        Err(LedgerError::Invalid {
            field,
            message: format!("unknown channel {c:?} (one of {})", CHANNELS.join(", ")),
        })
    }
}

impl NotifySettings {
    pub fn validate(&self) -> Result<()> {
        for c in &self.default_channels {
            check_channel("default_channels", c)?;
        }
        for s in &self.staff {
            check_channel("staff.channel", &s.channel)?;
            if s.id.is_empty() || s.address.is_empty() {
                return Err(LedgerError::Invalid {
                    field: "staff",
                    message: "a staff recipient needs an id and an address".into(),
                });
            }
        }
        if let Some(q) = &self.quiet_hours {
            q.validate()?;
        }
        Ok(())
    }
}

/// A guardian's preferences, stored in `guardians.notify_prefs`: either a comma-separated list
/// of channels (`sms,email`; every event) or JSON
/// `{"channels":["wechat"],"events":["absence","low_balance"],"quiet_hours":{"start":"21:30","end":"07:00"}}`.
/// Empty: the school's default channels, every event, the school's quiet hours.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardianPrefs {
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub events: Option<Vec<NoticeKind>>,
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
}

impl GuardianPrefs {
    pub fn parse(s: &str) -> Result<GuardianPrefs> {
        let s = s.trim();
        let p = if s.is_empty() {
            GuardianPrefs::default()
        } else if s.starts_with('{') {
            serde_json::from_str(s).map_err(|e| LedgerError::Invalid {
                field: "notify_prefs",
                message: e.to_string(),
            })?
        } else {
            GuardianPrefs {
                channels: s
                    .split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect(),
                ..Default::default()
            }
        };
        for c in &p.channels {
            check_channel("notify_prefs", c)?;
        }
        if let Some(q) = &p.quiet_hours {
            q.validate()?;
        }
        Ok(p)
    }
}

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

/// One stored outbox row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub delivery_key: String,
    pub notice_id: String,
    pub kind: NoticeKind,
    pub student_id: Option<String>,
    pub recipient_kind: RecipientKind,
    pub recipient_id: String,
    pub channel: String,
    pub address: String,
    pub language: String,
    pub params: Value,
    pub urgent: bool,
    pub state: OutboxState,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub claimed_by: Option<String>,
    pub claim_until: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// Outbox rows per state (metrics and the API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: i64,
    /// Pending rows whose `due_at` has passed (a subset of `pending`).
    pub due: i64,
    /// Pending rows under a live claim (being sent now).
    pub in_flight: i64,
    pub sent: i64,
    pub dead: i64,
}

const ROW_COLS: &str = "seq, delivery_key, notice_id, kind, student_id, recipient_kind, recipient_id, channel, address, language, params_json, urgent, state, attempts, created_at, due_at, claimed_by, claim_until, sent_at, last_error";

fn corrupt(what: &str, v: &str) -> LedgerError {
    LedgerError::Corrupt(format!("{what}: {v:?}"))
}

fn row_of(r: &AnyRow) -> Result<OutboxRow> {
    let kind: String = r.try_get(3)?;
    let rk: String = r.try_get(5)?;
    let state: String = r.try_get(12)?;
    let params: String = r.try_get(10)?;
    Ok(OutboxRow {
        id: r.try_get(0)?,
        delivery_key: r.try_get(1)?,
        notice_id: r.try_get(2)?,
        kind: NoticeKind::parse(&kind).ok_or_else(|| corrupt("notice kind", &kind))?,
        student_id: r.try_get(4)?,
        recipient_kind: RecipientKind::parse(&rk).ok_or_else(|| corrupt("recipient kind", &rk))?,
        recipient_id: r.try_get(6)?,
        channel: r.try_get(7)?,
        address: r.try_get(8)?,
        language: r.try_get(9)?,
        params: serde_json::from_str(&params)
            .map_err(|e| LedgerError::Corrupt(format!("notice params: {e}")))?,
        urgent: r.try_get::<i64, _>(11)? != 0,
        state: OutboxState::parse(&state).ok_or_else(|| corrupt("outbox state", &state))?,
        attempts: r.try_get(13)?,
        created_at: from_ms(r.try_get(14)?),
        due_at: from_ms(r.try_get(15)?),
        claimed_by: r.try_get(16)?,
        claim_until: r.try_get::<Option<i64>, _>(17)?.map(from_ms),
        sent_at: r.try_get::<Option<i64>, _>(18)?.map(from_ms),
        last_error: r.try_get(19)?,
    })
}

// -------------------------------------------------------------------------------------------
// Drafts for the ledger's causes
// -------------------------------------------------------------------------------------------

/// Arrival notice for a recorded check-in.
pub fn arrival(
    student: &str,
    lesson: &BookedLesson,
    status: AttendanceStatus,
    at: DateTime<Utc>,
) -> NoticeDraft {
    NoticeDraft {
        notice_id: format!("arrival:{student}:{}", lesson.lesson_id),
        kind: NoticeKind::Arrival,
        student_id: Some(student.into()),
        class_id: Some(lesson.class_id.clone()),
        params: json!({"lesson_id": lesson.lesson_id, "status": status.as_str(), "lesson_start": lesson.start}),
        at,
    }
}

/// Absence notice (student missing at a lesson). Sent by [`Store::notify_missing`] at lesson
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

/// Writes the absence notice of a finalised absence; excused absences (approved leave: the
/// guardians asked for it) get none.
pub(crate) async fn enqueue_absence(
    c: &mut AnyConnection,
    school: &str,
    student: &str,
    lesson: &BookedLesson,
    status: AttendanceStatus,
    at: DateTime<Utc>,
) -> Result<usize> {
    if status != AttendanceStatus::Absent {
        return Ok(0);
    }
    enqueue(c, school, &absence(student, lesson, at)).await
}

/// Writes the notice of a newly raised alert (same transaction as the alert row).
///
/// `packages`: the student's packages and overdraft as they stand right after the change that
/// raised the alert, when the caller has them (a batch of check-ins has written later changes
/// already); `None` reads them from the database.
pub(crate) async fn enqueue_alert(
    c: &mut AnyConnection,
    school: &str,
    a: &AlertDraft,
    at: i64,
    packages: Option<(&[PackageState], Units)>,
) -> Result<usize> {
    enqueue_alert_db(&mut AnyDb(c), school, a, at, packages).await
}

/// [`enqueue_alert`] on any [`Db`].
pub(crate) async fn enqueue_alert_db(
    c: &mut dyn Db,
    school: &str,
    a: &AlertDraft,
    at: i64,
    packages: Option<(&[PackageState], Units)>,
) -> Result<usize> {
    let draft = alert_notice(c, school, a, at, packages).await?;
    enqueue_many(c, school, std::slice::from_ref(&draft)).await
}

/// The notice of alert `a` (see [`enqueue_alert`]); reads the student's packages only when a
/// balance alert comes without them.
pub(crate) async fn alert_notice(
    c: &mut dyn Db,
    school: &str,
    a: &AlertDraft,
    at: i64,
    packages: Option<(&[PackageState], Units)>,
) -> Result<NoticeDraft> {
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
    };
    params["message"] = json!(a.message);
    params["package_id"] = json!(a.package_id);
    if matches!(kind, NoticeKind::LowBalance | NoticeKind::ExpiringPackage) {
        let loaded;
        let (pkgs, od) = match packages {
            Some(p) => p,
            None => {
                loaded = load_packages_of(c, school, &[a.student_id.as_str()])
                    .await?
                    .remove(&a.student_id)
                    .unwrap_or_default();
                (loaded.0.as_slice(), loaded.1)
            }
        };
        params["left"] = json!(fmt_units(available_units(pkgs, od, at)));
        if let Some(p) = pkgs
            .iter()
            .find(|p| Some(&p.package_id) == a.package_id.as_ref())
        {
            params["left"] = json!(fmt_units(p.balance_units));
            params["expires_at"] = json!(p.expires_at);
        }
    }
    Ok(NoticeDraft {
        notice_id: format!("alert:{}", a.dedup_key),
        kind,
        student_id: (!a.student_id.is_empty()).then(|| a.student_id.clone()),
        class_id: a.class_id.clone(),
        params,
        at,
    })
}

// -------------------------------------------------------------------------------------------
// Enqueue (inside the caller's transaction)
// -------------------------------------------------------------------------------------------

struct Target {
    kind: RecipientKind,
    id: String,
    channel: String,
    address: String,
    language: String,
    quiet: Option<QuietHours>,
}

/// Writes the rows of one notice on the caller's connection (inside its transaction): one row per
/// recipient and channel, by the school's settings and each guardian's preferences. A row whose
/// delivery key exists is skipped (replays insert nothing). Returns the rows inserted; 0 when
/// notifications are off for the school.
pub async fn enqueue(c: &mut AnyConnection, school: &str, d: &NoticeDraft) -> Result<usize> {
    enqueue_many(&mut AnyDb(c), school, std::slice::from_ref(d)).await
}

/// What [`enqueue_many`] reads of the school once for all its notices: notification settings
/// (when enabled), time zone, policy.
pub(crate) struct NotifyCtx {
    settings: NotifySettings,
    tz: i64,
    policy_json: String,
}

impl NotifyCtx {
    /// From the school's `tz_offset_minutes`, `policy_json` and `notify_settings.settings_json`
    /// (`None`: never set); `None` when notifications are off.
    pub(crate) fn new(
        tz: i64,
        policy_json: String,
        settings_json: Option<String>,
    ) -> Result<Option<NotifyCtx>> {
        let Some(settings) = settings_json else {
            return Ok(None);
        };
        let settings: NotifySettings = serde_json::from_str(&settings)
            .map_err(|e| LedgerError::Corrupt(format!("notify settings: {e}")))?;
        Ok(settings.enabled.then_some(NotifyCtx {
            settings,
            tz,
            policy_json,
        }))
    }
}

/// [`enqueue`] for several notices: the school's settings are read once for all of them (a
/// batch of check-ins reads them once). Returns the rows inserted.
pub(crate) async fn enqueue_many(
    c: &mut dyn Db,
    school: &str,
    ds: &[NoticeDraft],
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
    enqueue_with(c, school, ctx.as_ref(), ds).await
}

/// [`enqueue_many`] with the school's settings already read (`None`: notifications off): one
/// statement reads the notices' recipients, one (per 256 rows) writes their rows.
pub(crate) async fn enqueue_with(
    c: &mut dyn Db,
    school: &str,
    ctx: Option<&NotifyCtx>,
    ds: &[NoticeDraft],
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
    for st in outbox_stmts(school, ctx, ds, &recipients)? {
        inserted += c.fetch(&st.sql, st.args).await?.len();
    }
    Ok(inserted)
}

/// A guardian as the outbox needs them.
struct Guardian {
    id: String,
    phone: Option<String>,
    email: Option<String>,
    language: String,
    prefs: String,
}

/// What the notices of some students and classes need to know of them (see [`recipients_stmt`]).
#[derive(Default)]
pub(crate) struct Recipients {
    class_names: HashMap<String, String>,
    /// Each student's name and guardians (in id order).
    students: HashMap<String, (String, Vec<Guardian>)>,
}

/// The statement reading the names of `classes` and the names and guardians of `students`
/// (`None`: neither is given).
pub(crate) fn recipients_stmt(school: &str, students: &[&str], classes: &[&str]) -> Option<Stmt> {
    let dedup = |v: &[&str]| {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let (students, classes) = (dedup(students), dedup(classes));
    if students.is_empty() && classes.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    let mut args: Vec<Arg> = vec![school.into()];
    if !classes.is_empty() {
        parts.push(format!(
            "SELECT 'k', k.id, k.name, NULL, NULL, NULL, NULL, NULL FROM classes k WHERE k.school_id = $1 AND k.id IN ({})",
            list_marks(classes.len(), args.len() + 1)
        ));
        args.extend(classes.iter().map(Arg::from));
    }
    if !students.is_empty() {
        parts.push(format!(
            "SELECT 's', s.id, s.name, g.id, g.phone, g.email, g.language, g.notify_prefs FROM students s \
             LEFT JOIN guardians g ON g.school_id = s.school_id AND g.student_id = s.id \
             WHERE s.school_id = $1 AND s.id IN ({})",
            list_marks(students.len(), args.len() + 1)
        ));
        args.extend(students.iter().map(Arg::from));
    }
    Some(Stmt::new(parts.join(" UNION ALL "), args, 8))
}

impl Recipients {
    pub(crate) fn parse(rows: Vec<crate::db::Row>) -> Result<Recipients> {
        let mut out = Recipients::default();
        for r in rows {
            if r.text(0)? == "k" {
                out.class_names.insert(r.text(1)?, r.text(2)?);
                continue;
            }
            let entry = out
                .students
                .entry(r.text(1)?)
                .or_insert_with(|| (String::new(), Vec::new()));
            entry.0 = r.text(2)?;
            if let Some(id) = r.opt_text(3)? {
                entry.1.push(Guardian {
                    id,
                    phone: r.opt_text(4)?,
                    email: r.opt_text(5)?,
                    language: r.text(6)?,
                    prefs: r.text(7)?,
                });
            }
        }
        for (_, gs) in out.students.values_mut() {
            gs.sort_by(|a, b| a.id.cmp(&b.id));
        }
        Ok(out)
    }
}

/// The statements writing the outbox rows of `ds` (one row per recipient and channel, by the
/// school's settings and each guardian's preferences; a row whose delivery key exists is
/// skipped, so replays insert nothing), each returning the rows it inserted.
pub(crate) fn outbox_stmts(
    school: &str,
    ctx: &NotifyCtx,
    ds: &[NoticeDraft],
    recipients: &Recipients,
) -> Result<Vec<Stmt>> {
    let now = ms(Utc::now());
    let mut rows: Vec<Vec<Arg>> = Vec::new();
    for d in ds {
        let (params, targets) = notice_rows(ctx, d, recipients)?;
        let urgent = d.kind == NoticeKind::Absence && ctx.settings.urgent_absence;
        let params_json = params.to_string();
        for t in targets {
            let due = match (&t.quiet, urgent) {
                (Some(q), false) => q.release_at(d.at, ctx.tz)?,
                _ => d.at,
            };
            let key = format!("{}/{}:{}/{}", d.notice_id, t.kind.as_str(), t.id, t.channel);
            rows.push(vec![
                school.into(),
                key.into(),
                (&d.notice_id).into(),
                d.kind.as_str().into(),
                (&d.student_id).into(),
                t.kind.as_str().into(),
                t.id.into(),
                t.channel.into(),
                t.address.into(),
                t.language.into(),
                (&params_json).into(),
                i64::from(urgent).into(),
                now.into(),
                ms(due).into(),
            ]);
        }
    }
    Ok(rows
        .chunks(256)
        .map(|chunk| {
            let marks = (0..chunk.len())
                .map(|r| {
                    let b = 1 + r * 14;
                    let m: Vec<String> = (b..b + 14).map(|i| format!("${i}")).collect();
                    format!(
                        "({}, 'pending', 0, {}, {}, {})",
                        m[..12].join(", "),
                        m[12],
                        m[13],
                        m[12]
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            Stmt::new(
                format!(
                    "INSERT INTO outbox (school_id, delivery_key, notice_id, kind, student_id, recipient_kind, recipient_id, channel, address, language, params_json, urgent, state, attempts, created_at, due_at, updated_at) \
                     VALUES {marks} ON CONFLICT (school_id, delivery_key) DO NOTHING RETURNING seq"
                ),
                chunk.iter().flatten().cloned().collect(),
                1,
            )
        })
        .collect())
}

/// One notice's parameters and recipients.
fn notice_rows(
    ctx: &NotifyCtx,
    d: &NoticeDraft,
    recipients: &Recipients,
) -> Result<(Value, Vec<Target>)> {
    let settings = &ctx.settings;
    let (to_guardians, to_staff) = d.kind.audience();
    let mut params = d.params.clone();
    if !params.is_object() {
        params = json!({ "value": params });
    }
    let local = d.at + Duration::minutes(ctx.tz);
    params["local_time"] = json!(local.format("%H:%M").to_string());
    params["local_date"] = json!(local.format("%Y-%m-%d").to_string());
    params["at"] = json!(d.at);
    if d.kind == NoticeKind::AbsenceStreak {
        let policy: SchoolPolicy = serde_json::from_str(&ctx.policy_json)
            .map_err(|e| LedgerError::Corrupt(format!("school policy: {e}")))?;
        params["count"] = json!(policy.alerts.absence_streak);
    }
    if let Some(k) = &d.class_id {
        params["class_id"] = json!(k);
        params["class_name"] = json!(recipients.class_names.get(k).unwrap_or(k));
    }
    let mut targets = Vec::new();
    if let Some(student) = &d.student_id {
        let Some((name, guardians)) = recipients.students.get(student) else {
            return Err(LedgerError::NotFound {
                entity: "student",
                id: student.clone(),
            });
        };
        params["student_id"] = json!(student);
        params["student_name"] = json!(name);
        for g in guardians.iter().filter(|_| to_guardians) {
            // a guardian's malformed preferences never block the ledger: the school's defaults
            let prefs = GuardianPrefs::parse(&g.prefs).unwrap_or_default();
            if let Some(ev) = &prefs.events {
                if !ev.contains(&d.kind) {
                    continue;
                }
            }
            let channels = if prefs.channels.is_empty() {
                &settings.default_channels
            } else {
                &prefs.channels
            };
            for ch in channels {
                let address = match ch.as_str() {
                    "sms" | "wechat" => g.phone.clone(),
                    "email" => g.email.clone(),
                    _ => Some(g.id.clone()),
                };
                // no address for this channel: the guardian is not reachable on it
                let Some(address) = address.filter(|a| !a.trim().is_empty()) else {
                    continue;
                };
                targets.push(Target {
                    kind: RecipientKind::Guardian,
                    id: g.id.clone(),
                    channel: ch.clone(),
                    address,
                    language: g.language.clone(),
                    quiet: prefs.quiet_hours.clone().or(settings.quiet_hours.clone()),
                });
            }
        }
    }
    if to_staff {
        for s in &settings.staff {
            if s.events.as_ref().is_some_and(|ev| !ev.contains(&d.kind)) {
                continue;
            }
            targets.push(Target {
                kind: RecipientKind::Staff,
                id: s.id.clone(),
                channel: s.channel.clone(),
                address: s.address.clone(),
                language: s.language.clone(),
                // quiet hours are for families: staff notices go out at once
                quiet: None,
            });
        }
    }
    Ok((params, targets))
}

// -------------------------------------------------------------------------------------------
// Store API
// -------------------------------------------------------------------------------------------

impl Store {
    fn outbox_school(&self) -> Result<String> {
        let s = self.school_id();
        if s.is_empty() {
            return Err(LedgerError::Invalid {
                field: "school",
                message: "store is not scoped to a school".into(),
            });
        }
        Ok(s.to_string())
    }

    /// The school's notification settings (defaults, notifications off, when never set).
    pub async fn notify_settings(&self) -> Result<NotifySettings> {
        let r = sqlx::query("SELECT settings_json FROM notify_settings WHERE school_id = $1")
            .bind(self.outbox_school()?)
            .fetch_optional(&self.pool)
            .await?;
        match r {
            Some(r) => serde_json::from_str(&r.try_get::<String, _>(0)?)
                .map_err(|e| LedgerError::Corrupt(format!("notify settings: {e}"))),
            None => Ok(NotifySettings::default()),
        }
    }

    /// Replaces the school's notification settings (validated, audited).
    pub async fn set_notify_settings(&self, s: &NotifySettings, actor: &str) -> Result<()> {
        s.validate()?;
        let school = self.outbox_school()?;
        let before = self.notify_settings().await?;
        let js = serde_json::to_string(s).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        let now = ms(Utc::now());
        let mut w = self.write().await?;
        sqlx::query(
            "INSERT INTO notify_settings (school_id, settings_json, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (school_id) DO UPDATE SET settings_json = excluded.settings_json, updated_at = excluded.updated_at",
        )
        .bind(&school)
        .bind(&js)
        .bind(now)
        .execute(w.conn())
        .await?;
        crate::store::audit(
            w.conn(),
            &school,
            actor,
            "notify_settings",
            "school",
            &school,
            Some(json!(before)),
            Some(json!(s)),
            now,
        )
        .await?;
        w.commit().await
    }

    /// Writes a notice in its own transaction (e.g. `review_needed` from the review queue, or
    /// any cause outside the ledger's own transactions). Code inside the ledger crate that has a
    /// transaction open calls [`enqueue`] on it instead. Returns the rows inserted.
    pub async fn enqueue_notice(&self, d: &NoticeDraft) -> Result<usize> {
        let school = self.outbox_school()?;
        if d.notice_id.is_empty() || d.notice_id.len() > 400 {
            return Err(LedgerError::Invalid {
                field: "notice_id",
                message: "must be 1..=400 characters".into(),
            });
        }
        let mut w = self.write().await?;
        let n = enqueue(w.conn(), &school, d).await?;
        w.commit().await?;
        Ok(n)
    }

    /// Absence notices at lesson start + late grace: for every lesson that started at least its
    /// late grace ago and has not ended by more than `lookback`, each booked student with no
    /// attendance and no approved leave gets `absence:{student}:{lesson}` (once: the id is
    /// unique). Run periodically (the dispatcher does). Returns the rows written.
    pub async fn notify_missing(&self, now: DateTime<Utc>, lookback: Duration) -> Result<usize> {
        let school = self.outbox_school()?;
        if !self.notify_settings().await?.enabled {
            return Ok(0);
        }
        let rows = sqlx::query(
            "SELECT l.id, l.class_id, l.campus_id, l.start_ms, l.end_ms, k.policy_json FROM lessons l \
             JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id \
             WHERE l.school_id = $1 AND l.finalized_at IS NULL AND l.start_ms <= $2 AND l.end_ms >= $3 ORDER BY l.start_ms, l.id",
        )
        .bind(&school)
        .bind(ms(now))
        .bind(ms(now - lookback))
        .fetch_all(&self.pool)
        .await?;
        let mut written = 0;
        for r in &rows {
            let policy: rollcall_domain::ledger::ClassPolicy =
                serde_json::from_str(&r.try_get::<String, _>(5)?)
                    .map_err(|e| LedgerError::Corrupt(format!("class policy: {e}")))?;
            let lesson = BookedLesson {
                lesson_id: r.try_get(0)?,
                class_id: r.try_get(1)?,
                campus_id: r.try_get(2)?,
                start: from_ms(r.try_get(3)?),
                end: from_ms(r.try_get(4)?),
                timing: policy.timing,
            };
            let due = lesson.start + Duration::minutes(policy.timing.late_grace_minutes.max(0));
            if due > now {
                continue;
            }
            let missing: Vec<String> = sqlx::query(
                "SELECT b.student_id FROM (SELECT student_id FROM enrollments WHERE school_id = $1 AND class_id = $2 \
                 UNION SELECT student_id FROM makeups WHERE school_id = $1 AND lesson_id = $3) b \
                 WHERE NOT EXISTS (SELECT 1 FROM attendance a WHERE a.school_id = $1 AND a.lesson_id = $3 AND a.student_id = b.student_id) \
                 AND NOT EXISTS (SELECT 1 FROM leave_requests q WHERE q.school_id = $1 AND q.lesson_id = $3 AND q.student_id = b.student_id AND q.approved <> 0) \
                 AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.school_id = $1 AND o.notice_id = 'absence:' || b.student_id || ':' || $3) \
                 ORDER BY b.student_id",
            )
            .bind(&school)
            .bind(&lesson.class_id)
            .bind(&lesson.lesson_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
            for student in missing {
                let mut w = self.write().await?;
                // re-check under the write lock: a check-in may have landed meanwhile
                let attended = sqlx::query("SELECT 1 FROM attendance WHERE school_id = $1 AND lesson_id = $2 AND student_id = $3")
                    .bind(&school)
                    .bind(&lesson.lesson_id)
                    .bind(&student)
                    .fetch_optional(w.conn())
                    .await?
                    .is_some();
                if !attended {
                    written += enqueue(w.conn(), &school, &absence(&student, &lesson, due)).await?;
                }
                w.commit().await?;
            }
        }
        Ok(written)
    }

    /// Claims up to `limit` due rows for `worker` until `now + lease` (PostgreSQL:
    /// `FOR UPDATE SKIP LOCKED`; SQLite: one atomic `UPDATE … RETURNING` under the write lock).
    /// A row whose lease expired (its dispatcher died) is claimable again.
    pub async fn claim_notices(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<OutboxRow>> {
        let school = self.outbox_school()?;
        let lock = match self.backend() {
            crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            crate::Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET claimed_by = $1, claim_until = $2, updated_at = $3 WHERE seq IN (\
             SELECT seq FROM outbox WHERE school_id = $4 AND state = 'pending' AND due_at <= $3 \
             AND (claim_until IS NULL OR claim_until < $3) ORDER BY due_at, seq LIMIT $5{lock}) RETURNING {ROW_COLS}"
        );
        let mut w = self.write().await?;
        let rows = sqlx::query(&sql)
            .bind(worker)
            .bind(ms(now + lease))
            .bind(ms(now))
            .bind(&school)
            .bind(limit.clamp(1, 10_000))
            .fetch_all(w.conn())
            .await?;
        w.commit().await?;
        let mut out = rows.iter().map(row_of).collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|r| (r.due_at, r.id));
        Ok(out)
    }

    /// Marks a row sent (from any claimant: the provider has it). Returns false when it was no
    /// longer pending (another dispatcher already recorded it).
    pub async fn mark_notice_sent(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let school = self.outbox_school()?;
        let mut w = self.write().await?;
        let r = sqlx::query(
            "UPDATE outbox SET state = 'sent', sent_at = $1, updated_at = $1, attempts = attempts + 1, claimed_by = NULL, claim_until = NULL, last_error = NULL \
             WHERE school_id = $2 AND seq = $3 AND state = 'pending'",
        )
        .bind(ms(now))
        .bind(&school)
        .bind(id)
        .execute(w.conn())
        .await?;
        w.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    /// Records a failed attempt by `worker` (ignored when its claim was lost): the row becomes
    /// due again at `retry_at`, or dead (`None`) keeping `error`. Returns whether it applied.
    pub async fn mark_notice_failed(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        now: DateTime<Utc>,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let school = self.outbox_school()?;
        let error: String = error.chars().take(2000).collect();
        let (state, due) = match retry_at {
            Some(t) => ("pending", Some(ms(t))),
            None => ("dead", None),
        };
        let mut w = self.write().await?;
        let r = sqlx::query(
            "UPDATE outbox SET state = $1, due_at = COALESCE($2, due_at), attempts = attempts + 1, last_error = $3, claimed_by = NULL, claim_until = NULL, updated_at = $4 \
             WHERE school_id = $5 AND seq = $6 AND state = 'pending' AND claimed_by = $7",
        )
        .bind(state)
        .bind(due)
        .bind(&error)
        .bind(ms(now))
        .bind(&school)
        .bind(id)
        .bind(worker)
        .execute(w.conn())
        .await?;
        if r.rows_affected() > 0 && retry_at.is_none() {
            crate::store::audit(
                w.conn(),
                &school,
                worker,
                "dead_letter",
                "notice",
                &id.to_string(),
                None,
                Some(json!({"error": error})),
                ms(now),
            )
            .await?;
        }
        w.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    /// Puts a dead-lettered row back in the queue (staff action, audited); attempts restart.
    pub async fn requeue_notice(&self, id: i64, actor: &str, now: DateTime<Utc>) -> Result<()> {
        let school = self.outbox_school()?;
        let mut w = self.write().await?;
        let r = sqlx::query(
            "UPDATE outbox SET state = 'pending', attempts = 0, due_at = $1, updated_at = $1 WHERE school_id = $2 AND seq = $3 AND state = 'dead'",
        )
        .bind(ms(now))
        .bind(&school)
        .bind(id)
        .execute(w.conn())
        .await?;
        if r.rows_affected() == 0 {
            return Err(LedgerError::NotFound {
                entity: "dead-lettered notice",
                id: id.to_string(),
            });
        }
        crate::store::audit(
            w.conn(),
            &school,
            actor,
            "requeue",
            "notice",
            &id.to_string(),
            Some(json!({"state": "dead"})),
            Some(json!({"state": "pending"})),
            ms(now),
        )
        .await?;
        w.commit().await
    }

    /// Counts per state at `now` (for /metrics and the API).
    pub async fn outbox_counts(&self, now: DateTime<Utc>) -> Result<OutboxCounts> {
        let r = sqlx::query(
            "SELECT \
             CAST(COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN state = 'pending' AND due_at <= $2 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN state = 'pending' AND claim_until IS NOT NULL AND claim_until >= $2 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN state = 'sent' THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM outbox WHERE school_id = $1",
        )
        .bind(self.outbox_school()?)
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await?;
        Ok(OutboxCounts {
            pending: r.try_get(0)?,
            due: r.try_get(1)?,
            in_flight: r.try_get(2)?,
            sent: r.try_get(3)?,
            dead: r.try_get(4)?,
        })
    }

    /// Outbox rows, newest first, optionally in one state (dead letters for staff:
    /// `Some(OutboxState::Dead)`), at most `limit`.
    pub async fn outbox(&self, state: Option<OutboxState>, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ROW_COLS} FROM outbox WHERE school_id = $1 AND ($2 = '' OR state = $2) ORDER BY seq DESC LIMIT $3"
        ))
        .bind(self.outbox_school()?)
        .bind(state.map(|s| s.as_str()).unwrap_or(""))
        .bind(limit.clamp(1, 100_000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_of).collect()
    }

    /// The rows of one notice (every recipient and channel).
    pub async fn notice_rows(&self, notice_id: &str) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ROW_COLS} FROM outbox WHERE school_id = $1 AND notice_id = $2 ORDER BY seq"
        ))
        .bind(self.outbox_school()?)
        .bind(notice_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_of).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn q(s: &str, e: &str) -> QuietHours {
        QuietHours {
            start: s.into(),
            end: e.into(),
        }
    }

    #[test]
    fn quiet_hours_defer_to_the_end_in_school_time() {
        // school at UTC+8
        let tz = 480;
        let at = |h, m| Utc.with_ymd_and_hms(2026, 1, 5, h, m, 0).unwrap();
        let overnight = q("21:00", "07:00");
        // 22:30 local = 14:30 UTC → 07:00 local next day = 23:00 UTC same day
        assert_eq!(overnight.release_at(at(14, 30), tz).unwrap(), at(23, 0));
        // 06:00 local = 22:00 UTC (previous local day) → 07:00 local = 23:00 UTC
        assert_eq!(overnight.release_at(at(22, 0), tz).unwrap(), at(23, 0));
        // 12:00 local: not quiet
        assert_eq!(overnight.release_at(at(4, 0), tz).unwrap(), at(4, 0));
        let day = q("12:00", "13:30");
        assert_eq!(day.release_at(at(4, 15), tz).unwrap(), at(5, 30));
        assert_eq!(day.release_at(at(5, 30), tz).unwrap(), at(5, 30));
        assert_eq!(
            q("08:00", "08:00").release_at(at(0, 0), tz).unwrap(),
            at(0, 0)
        );
    }

    #[test]
    fn bad_settings_and_prefs_are_refused_with_the_field() {
        for bad in ["25:00", "7:00", "07:60", "x", ""] {
            let e = q(bad, "07:00").validate().unwrap_err().to_string();
            assert!(e.contains("quiet_hours.start"), "{e}");
        }
        let s = NotifySettings {
            default_channels: vec!["pigeon".into()],
            ..Default::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("pigeon"));
        assert!(GuardianPrefs::parse("sms,fax").is_err());
        assert!(GuardianPrefs::parse("{not json").is_err());
        let p = GuardianPrefs::parse(" sms , email ").unwrap();
        assert_eq!(p.channels, vec!["sms", "email"]);
        let p = GuardianPrefs::parse(r#"{"channels":["wechat"],"events":["absence"]}"#).unwrap();
        assert_eq!(p.events, Some(vec![NoticeKind::Absence]));
        assert_eq!(GuardianPrefs::parse("").unwrap(), GuardianPrefs::default());
    }
}
