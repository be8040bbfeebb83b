//! Composing a notice's outbox rows: its recipients (the school's staff, the student's
//! guardians by their preferences), channels, quiet hours and template parameters, and the
//! statements inserting the rows. Pure but for the statements it returns.

use super::kinds::{NoticeKind, RecipientKind};
use super::settings::{GuardianPrefs, NotifySettings, QuietHours};
use super::NoticeDraft;
use crate::db::{list_marks, ms, Arg, Stmt};
use crate::{LedgerError, Result};
use chrono::Duration;
use rollcall_domain::ledger::SchoolPolicy;
use serde_json::{json, Value};
use std::collections::HashMap;

/// One recipient and channel of a notice.
struct Target {
    kind: RecipientKind,
    id: String,
    channel: String,
    address: String,
    language: String,
    quiet: Option<QuietHours>,
}

/// What [`super::enqueue`] reads of the school once for all its notices: notification settings
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
/// skipped, so replays insert nothing), each returning the rows it inserted; `now` (ms) is
/// their `created_at`.
pub(crate) fn outbox_stmts(
    school: &str,
    ctx: &NotifyCtx,
    ds: &[NoticeDraft],
    recipients: &Recipients,
    now: i64,
) -> Result<Vec<Stmt>> {
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
