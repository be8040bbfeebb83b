//! What an alert is about, as data: the counts, dates and ids its text is made of, so that
//! each reader sees the alert in their own language (the staff app renders it from the alert's
//! kind, these facts and the names of its student and class). Alerts stored before the data
//! existed carry only an English message: [`AlertData::from_message`] reads the same facts back
//! from the messages this crate (and the runtime's camera alerts) wrote.

use crate::ledger::{AlertKind, InsufficientReason, Units, UNITS_PER_LESSON};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The facts of an alert (each kind fills its own; none of them is required).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertData {
    /// Lessons missed in a row (absence streak).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed: Option<u32>,
    /// The lesson concerned (a zero-balance check-in's; an absence streak's first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lesson_id: Option<String>,
    /// Lessons left, hundredths (low balance, expiring package).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units: Option<Units>,
    /// When the package expires (expiring package).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Why, as a code: a zero-balance check-in's (`no_package`, `expired`, `exhausted`), a
    /// camera alert's (`offline`, `stale`, `not_running`, `gallery_unreachable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A technical detail shown as it is (a camera's error, a time range, a failed check-in's
    /// error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera_id: Option<String>,
    /// The student of an alert that belongs to none (a parked check-in's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub student_id: Option<String>,
    /// How a parked check-in came (`face`, `manual`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// How many: make-ups booked this month; frames that could not be recognised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// The school's number the count passed (make-ups a month).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// The school-local month (`YYYY-MM`) of a make-up count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub month: Option<String>,
}

impl InsufficientReason {
    /// The reason's code (as serialised).
    pub fn as_str(&self) -> &'static str {
        match self {
            InsufficientReason::NoPackage => "no_package",
            InsufficientReason::Expired => "expired",
            InsufficientReason::Exhausted => "exhausted",
        }
    }
}

/// `"2.5"` → 250 (the inverse of `fmt_units`).
fn parse_units(s: &str) -> Option<Units> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !(whole.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let u = whole.parse::<Units>().ok()? * UNITS_PER_LESSON
        + format!("{frac:0<2}").parse::<Units>().ok()?;
    Some(if neg { -u } else { u })
}

/// The text between `before` and the next `after` in `s`.
fn between<'a>(s: &'a str, before: &str, after: &str) -> Option<&'a str> {
    let rest = &s[s.find(before)? + before.len()..];
    Some(&rest[..rest.find(after)?])
}

/// The first whole number in `s`.
fn first_number(s: &str) -> Option<i64> {
    let t: String = s
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    t.parse().ok()
}

impl AlertData {
    /// The facts of an alert stored with its English message only (written by this crate's
    /// alert builders, the store's make-up and parked check-in alerts, and the runtime's camera
    /// alerts), read back from the message and the dedup key; what cannot be read stays `None`.
    pub fn from_message(kind: AlertKind, dedup_key: &str, message: &str) -> AlertData {
        let mut d = AlertData::default();
        match kind {
            // "{student} missed {n} consecutive lessons of {class}"
            AlertKind::AbsenceStreak => {
                d.missed = between(message, " missed ", " consecutive")
                    .and_then(|n| n.trim().parse().ok());
            }
            // "{student} has {x} lesson(s) left"
            AlertKind::LowBalance => {
                d.units = message
                    .rsplit_once(" has ")
                    .and_then(|(_, r)| r.strip_suffix(" lesson(s) left"))
                    .and_then(parse_units);
            }
            // "package {p} of {student} expires {rfc3339} with {x} lesson(s) left"
            AlertKind::ExpiringPackage => {
                d.expires_at = between(message, " expires ", " with ")
                    .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
                    .map(|t| t.with_timezone(&Utc));
                d.units = message
                    .rsplit_once(" with ")
                    .and_then(|(_, r)| r.strip_suffix(" lesson(s) left"))
                    .and_then(parse_units);
            }
            // "{student} checked in to {lesson} without balance ({Reason:?})"; key
            // "zero:{student}:{lesson}"
            AlertKind::ZeroBalanceCheckin => {
                d.reason = message
                    .rsplit_once('(')
                    .and_then(|(_, r)| r.strip_suffix(')'))
                    .and_then(|r| match r {
                        "NoPackage" => Some(InsufficientReason::NoPackage),
                        "Expired" => Some(InsufficientReason::Expired),
                        "Exhausted" => Some(InsufficientReason::Exhausted),
                        _ => None,
                    })
                    .map(|r| r.as_str().to_string());
                d.lesson_id =
                    between(message, " checked in to ", " without balance").map(str::to_string);
            }
            // "student {s} has {n} make-ups booked in {YYYY-MM}, more than the school's {limit}"
            AlertKind::ManyMakeups => {
                d.count = between(message, " has ", " make-ups").and_then(first_number);
                d.month = between(message, " booked in ", ",").map(str::to_string);
                d.limit = message
                    .rsplit_once("the school's ")
                    .and_then(|(_, r)| r.trim().parse().ok());
            }
            // "student {id} at camera {cam} ({source}): {error}"
            AlertKind::CheckInFailed => {
                d.student_id = between(message, "student ", " at camera ").map(str::to_string);
                d.camera_id = between(message, " at camera ", " (").map(str::to_string);
                d.source = between(message, " (", "): ").map(str::to_string);
                d.detail = message.split_once("): ").map(|(_, e)| e.to_string());
            }
            AlertKind::CameraOffline => d = camera_data(dedup_key, message),
        }
        d
    }

    /// Whether nothing is known (an alert that could not be read).
    pub fn is_empty(&self) -> bool {
        *self == AlertData::default()
    }
}

/// A camera alert's facts from its key and message (`camera {cam}: {what}`): key
/// `camera:{cam}:{since}` (what: `offline ({error})`, `no frame since {t}`), `gap:{cam}:…`
/// (rollcall was not running from … to …), `gallery:{cam}:…` (the face gallery was unreachable
/// from …: {n} frame(s) … could not be recognised).
fn camera_data(dedup_key: &str, message: &str) -> AlertData {
    let mut d = AlertData::default();
    let (prefix, rest) = dedup_key.split_once(':').unwrap_or(("", ""));
    // the camera id: the key without its prefix and its trailing time(s)
    let cam = match prefix {
        "gap" => rest.rsplitn(3, ':').nth(2),
        _ => rest.rsplit_once(':').map(|(c, _)| c),
    };
    d.camera_id = cam.filter(|c| !c.is_empty()).map(str::to_string);
    let what = match &d.camera_id {
        Some(c) => message
            .strip_prefix(&format!("camera {c}: "))
            .unwrap_or(message),
        // a key of another shape: the camera from the message ("camera {id}: …")
        None => match message
            .strip_prefix("camera ")
            .and_then(|r| r.split_once(": "))
        {
            Some((c, what)) if !c.is_empty() && !c.contains(' ') => {
                d.camera_id = Some(c.to_string());
                what
            }
            _ => message,
        },
    };
    match prefix {
        "gap" => {
            d.reason = Some("not_running".into());
            d.detail = between(what, "not running from ", ": ").map(|r| r.replace(" to ", " – "));
        }
        "gallery" => {
            d.reason = Some("gallery_unreachable".into());
            d.count = what.split_once(": ").and_then(|(_, r)| first_number(r));
            d.detail = what
                .strip_prefix("the face gallery was unreachable from ")
                .map(|r| r.chars().take(19).collect());
        }
        _ => {
            if let Some(r) = what.strip_prefix("offline") {
                d.reason = Some("offline".into());
                d.detail = r
                    .trim()
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .map(str::to_string);
            } else if let Some(t) = what.strip_prefix("no frame since ") {
                d.reason = Some("stale".into());
                d.detail = Some(t.to_string());
            } else {
                d.detail = Some(what.to_string()).filter(|w| !w.is_empty());
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::*;
    use chrono::TimeZone;

    /// The messages the alert builders write read back as their facts.
    #[test]
    fn the_builders_messages_read_back() {
        let s = Streak {
            first_lesson_id: "M1".into(),
            len: 3,
        };
        let a = streak_alert("s1", "math", &s);
        let d = AlertData::from_message(a.kind, &a.dedup_key, &a.message);
        assert_eq!(d.missed, Some(3));
        assert_eq!(d.missed, a.data.missed);

        let a = low_balance_alert("s1", 150, 2, &AlertPolicy::default()).unwrap();
        let d = AlertData::from_message(a.kind, &a.dedup_key, &a.message);
        assert_eq!(d.units, Some(150));
        assert_eq!(d, a.data);

        let at = Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap();
        let p = PackageState {
            package_id: "p1".into(),
            campus_id: None,
            lessons_bought: 10,
            unit_price_cents: 100,
            price_paid_cents: 1000,
            bought_at: at - chrono::Duration::days(100),
            expires_at: at + chrono::Duration::days(3),
            balance_units: 250,
            gift_lessons: 0,
            used_units: 750,
        };
        let a = expiring_alert("s1", &p, at, &AlertPolicy::default()).unwrap();
        let d = AlertData::from_message(a.kind, &a.dedup_key, &a.message);
        assert_eq!((d.units, d.expires_at), (Some(250), Some(p.expires_at)));
        assert_eq!(d, a.data);

        let a = zero_balance_alert("s1", "math", "M2", InsufficientReason::Expired);
        let d = AlertData::from_message(a.kind, &a.dedup_key, &a.message);
        assert_eq!(d.reason.as_deref(), Some("expired"));
        assert_eq!(d.lesson_id.as_deref(), Some("M2"));
        assert_eq!(d, a.data);
    }

    #[test]
    fn other_alerts_messages_read_back() {
        let d = AlertData::from_message(
            AlertKind::ManyMakeups,
            "makeups:s1:2026-03",
            "student s1 has 5 make-ups booked in 2026-03, more than the school's 4",
        );
        assert_eq!((d.count, d.limit), (Some(5), Some(4)));
        assert_eq!(d.month.as_deref(), Some("2026-03"));
        let d = AlertData::from_message(
            AlertKind::CheckInFailed,
            "parked:k1",
            "student s9 at camera cam-n (face): unknown student \"s9\"",
        );
        assert_eq!(d.student_id.as_deref(), Some("s9"));
        assert_eq!(d.camera_id.as_deref(), Some("cam-n"));
        assert_eq!(d.source.as_deref(), Some("face"));
        assert_eq!(d.detail.as_deref(), Some("unknown student \"s9\""));
        for (key, msg, reason, detail) in [
            ("camera:cam-n:17", "camera cam-n: offline", "offline", None),
            (
                "camera:cam-n:17",
                "camera cam-n: offline (connection refused)",
                "offline",
                Some("connection refused"),
            ),
            (
                "camera:cam-n:17",
                "camera cam-n: no frame since 12s",
                "stale",
                Some("12s"),
            ),
            (
                "gap:cam-n:17:18",
                "camera cam-n: rollcall was not running from 2026-03-01 10:00:00 to 10:05:00: walk-throughs in between were not seen",
                "not_running",
                Some("2026-03-01 10:00:00 – 10:05:00"),
            ),
            (
                "gallery:cam-n:17",
                "camera cam-n: the face gallery was unreachable from 2026-03-01 10:00:00: 7 frame(s) with faces from 10:00:01 to 10:00:09 could not be recognised",
                "gallery_unreachable",
                Some("2026-03-01 10:00:00"),
            ),
        ] {
            let d = AlertData::from_message(AlertKind::CameraOffline, key, msg);
            assert_eq!(d.camera_id.as_deref(), Some("cam-n"), "{msg}");
            assert_eq!(d.reason.as_deref(), Some(reason), "{msg}");
            assert_eq!(d.detail.as_deref(), detail, "{msg}");
        }
        let d = AlertData::from_message(
            AlertKind::CameraOffline,
            "gallery:cam-n:17",
            "camera cam-n: the face gallery was unreachable from 2026-03-01 10:00:00 until rollcall stopped: 7 frame(s) with faces from 10:00:01 to 10:00:09 could not be recognised",
        );
        assert_eq!(d.count, Some(7));
        let d = AlertData::from_message(
            AlertKind::CameraOffline,
            "some-key",
            "camera cam-s: camera offline",
        );
        assert_eq!(d.camera_id.as_deref(), Some("cam-s"));
        assert_eq!(d.detail.as_deref(), Some("camera offline"));
        // a message of unknown shape: nothing but what the key says
        let d = AlertData::from_message(AlertKind::LowBalance, "low:s1:1", "something else");
        assert!(d.is_empty());
        assert_eq!(parse_units("-1"), Some(-100));
        assert_eq!(parse_units("0.5"), Some(50));
        assert_eq!(parse_units("x"), None);
    }
}
