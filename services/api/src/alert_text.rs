//! Alerts in the reader's words: an alert's text made from its kind, its data (counts, dates,
//! ids: [`rollcall_domain::ledger::AlertData`]) and the current names of its student, class and
//! camera, in English or Chinese, dates in the school's local time. The API sends both texts;
//! the staff app shows the reader's. An alert whose data could not be read (stored before the
//! data was, in a form the ledger does not know) is its kind's words and the stored message.

use crate::error::ApiResult;
use crate::AppState;
use chrono::Duration;
use rollcall_domain::ledger::{fmt_units, AlertKind};
use rollcall_ledger::AlertView;
use std::collections::HashMap;

/// The names alerts are written with, by id.
#[derive(Default)]
pub(crate) struct AlertNames {
    pub(crate) students: HashMap<String, String>,
    pub(crate) classes: HashMap<String, String>,
    /// A camera's words: "cam-n (North, front)".
    pub(crate) cameras: HashMap<String, String>,
}

impl AlertNames {
    /// The school's classes' names by id.
    pub(crate) async fn class_names(st: &AppState) -> ApiResult<HashMap<String, String>> {
        Ok(st
            .store
            .classes()
            .await?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect())
    }

    /// The school's students', classes' and cameras' names.
    pub(crate) async fn load(st: &AppState) -> ApiResult<AlertNames> {
        let campuses: HashMap<String, String> = st.store.campuses().await?.into_iter().collect();
        Ok(AlertNames {
            students: st
                .store
                .students()
                .await?
                .into_iter()
                .map(|s| (s.id, s.name))
                .collect(),
            classes: Self::class_names(st).await?,
            cameras: st
                .store
                .cameras()
                .await?
                .into_iter()
                .map(|c| {
                    let campus = campuses.get(&c.campus_id).unwrap_or(&c.campus_id);
                    let words = format!("{} ({campus}, {})", c.id, c.door);
                    (c.id, words)
                })
                .collect(),
        })
    }
}

/// An alert in both languages.
pub(crate) struct AlertTexts {
    pub(crate) en: String,
    pub(crate) zh: String,
}

/// The words of a kind, for an alert that could not be read.
fn kind_words(kind: AlertKind) -> (&'static str, &'static str) {
    match kind {
        AlertKind::AbsenceStreak => ("Absences in a row", "连续缺勤"),
        AlertKind::LowBalance => ("Low balance", "课时不足"),
        AlertKind::ExpiringPackage => ("Package expiring", "课时包即将到期"),
        AlertKind::ZeroBalanceCheckin => ("Check-in without balance", "无课时签到"),
        AlertKind::CameraOffline => ("Camera", "摄像头"),
        AlertKind::CheckInFailed => ("Check-in not recorded", "签到未能记录"),
        AlertKind::ManyMakeups => ("Many make-ups", "补课次数过多"),
    }
}

fn source_words(source: &str) -> (&str, &str) {
    match source {
        "face" => ("face", "人脸识别"),
        "manual" => ("by hand", "手动"),
        "qr" => ("by card", "刷卡"),
        "review" => ("review", "审核"),
        s => (s, s),
    }
}

/// Alert `a` in English and Chinese, with `names`, dates in the school's local time
/// (`tz_offset_minutes` east of UTC).
pub(crate) fn alert_texts(a: &AlertView, names: &AlertNames, tz_offset_minutes: i64) -> AlertTexts {
    let d = &a.data;
    let student_id = if a.student_id.is_empty() {
        d.student_id.clone().unwrap_or_default()
    } else {
        a.student_id.clone()
    };
    let student = names
        .students
        .get(&student_id)
        .cloned()
        .unwrap_or(student_id);
    let class = a
        .class_id
        .as_ref()
        .map(|c| names.classes.get(c).cloned().unwrap_or_else(|| c.clone()))
        .unwrap_or_default();
    let camera = d
        .camera_id
        .as_ref()
        .map(|c| names.cameras.get(c).cloned().unwrap_or_else(|| c.clone()))
        .unwrap_or_default();
    let detail = d.detail.clone().unwrap_or_default();
    let units = d.units.map(fmt_units);
    let unread = || {
        let (en, zh) = kind_words(a.kind);
        AlertTexts {
            en: format!("{en}: {}", a.message),
            zh: format!("{zh}：{}", a.message),
        }
    };
    let t = |en: String, zh: String| AlertTexts { en, zh };
    match a.kind {
        AlertKind::AbsenceStreak => match d.missed {
            Some(n) => t(
                format!("{student} missed {n} lessons in a row of {class}"),
                format!("{student} 在{class}连续缺勤 {n} 次"),
            ),
            None => unread(),
        },
        AlertKind::LowBalance => match units {
            Some(u) => t(
                format!("{student} has {u} lesson(s) left"),
                format!("{student} 只剩 {u} 节课"),
            ),
            None => unread(),
        },
        AlertKind::ExpiringPackage => match (d.expires_at, units) {
            (Some(at), Some(u)) => {
                let day = (at + Duration::minutes(tz_offset_minutes))
                    .format("%Y-%m-%d")
                    .to_string();
                match a.package_id.as_deref().filter(|p| !p.is_empty()) {
                    Some(pkg) => t(
                        format!("{student}'s package {pkg} expires on {day} with {u} lesson(s) left"),
                        format!("{student} 的课时包 {pkg} 将于 {day} 到期，还剩 {u} 节课"),
                    ),
                    None => t(
                        format!("A package of {student} expires on {day} with {u} lesson(s) left"),
                        format!("{student} 的课时包将于 {day} 到期，还剩 {u} 节课"),
                    ),
                }
            }
            _ => unread(),
        },
        AlertKind::ZeroBalanceCheckin => {
            let (why_en, why_zh) = match d.reason.as_deref() {
                Some("no_package") => ("no package for this campus", "没有可用于该校区的课时包"),
                Some("expired") => ("only expired packages left", "只剩已过期的课时包"),
                Some("exhausted") => ("every package is used up", "课时已用完"),
                _ => return unread(),
            };
            t(
                format!("{student} checked in to {class} with no lesson to pay for it: {why_en}"),
                format!("{student} 在{class}签到时没有可扣的课时：{why_zh}"),
            )
        }
        AlertKind::CameraOffline => match d.reason.as_deref() {
            Some("offline") if detail.is_empty() => t(
                format!("Camera {camera} is offline"),
                format!("摄像头 {camera} 离线"),
            ),
            Some("offline") => t(
                format!("Camera {camera} is offline ({detail})"),
                format!("摄像头 {camera} 离线（{detail}）"),
            ),
            Some("stale") => t(
                format!("Camera {camera} has sent no frame since {detail}"),
                format!("摄像头 {camera} 自 {detail} 起没有画面"),
            ),
            Some("not_running") => t(
                format!("rollcall was not running ({detail}): walk-throughs past camera {camera} were not seen"),
                format!("rollcall 曾停止运行（{detail}）：期间经过摄像头 {camera} 的学员未被识别"),
            ),
            Some("gallery_unreachable") => {
                let n = d.count.unwrap_or(0);
                t(
                    format!("The face gallery could not be reached (from {detail}): {n} frame(s) of camera {camera} were not recognised"),
                    format!("人脸库无法连接（自 {detail} 起）：摄像头 {camera} 有 {n} 帧人脸未能识别"),
                )
            }
            _ if !camera.is_empty() && !detail.is_empty() => t(
                format!("Camera {camera}: {detail}"),
                format!("摄像头 {camera}：{detail}"),
            ),
            _ => unread(),
        },
        AlertKind::CheckInFailed => {
            if student.is_empty() {
                return unread();
            }
            let (src_en, src_zh) = source_words(d.source.as_deref().unwrap_or(""));
            let cam = if camera.is_empty() { "-".to_string() } else { camera };
            t(
                format!("The check-in of {student} at camera {cam} ({src_en}) could not be recorded: {detail}"),
                format!("{student} 在摄像头 {cam}（{src_zh}）的签到未能记录：{detail}"),
            )
        }
        AlertKind::ManyMakeups => match (d.count, d.limit) {
            (Some(n), Some(limit)) => {
                let month = d.month.clone().unwrap_or_default();
                t(
                    format!("{student} has {n} make-ups booked in {month}, more than the school's {limit}"),
                    format!("{student} 在 {month} 已安排补课 {n} 次，超过学校规定的 {limit} 次"),
                )
            }
            _ => unread(),
        },
    }
}

/// Alert `a` in one language (`zh`: Chinese, else English).
pub(crate) fn alert_text(
    zh: bool,
    a: &AlertView,
    names: &AlertNames,
    tz_offset_minutes: i64,
) -> String {
    let t = alert_texts(a, names, tz_offset_minutes);
    if zh {
        t.zh
    } else {
        t.en
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use rollcall_domain::ledger::{AlertData, AlertState};

    fn view(
        kind: AlertKind,
        key: &str,
        student: &str,
        class: Option<&str>,
        message: &str,
    ) -> AlertView {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap();
        AlertView {
            id: 1,
            kind,
            state: AlertState::Open,
            dedup_key: key.into(),
            student_id: student.into(),
            class_id: class.map(Into::into),
            message: message.into(),
            data: AlertData::from_message(kind, key, message),
            package_id: key.strip_prefix("expiring:").map(Into::into),
            created_at: at,
            updated_at: at,
        }
    }

    /// Alerts stored before their data was (kind and English message only) read in Chinese:
    /// every kind, with the names of today and no English word left but ids and details.
    #[test]
    fn stored_messages_of_every_kind_read_in_chinese() {
        let mut names = AlertNames::default();
        names.students.insert("s1".into(), "小明".into());
        names.classes.insert("math".into(), "数学A班".into());
        names
            .cameras
            .insert("cam-n".into(), "cam-n (北校区, front)".into());
        let cases = [
            view(
                AlertKind::AbsenceStreak,
                "streak:s1:math:M1",
                "s1",
                Some("math"),
                "s1 missed 3 consecutive lessons of math",
            ),
            view(
                AlertKind::LowBalance,
                "low:s1:1",
                "s1",
                None,
                "s1 has 1.5 lesson(s) left",
            ),
            view(
                AlertKind::ExpiringPackage,
                "expiring:p1",
                "s1",
                None,
                "package p1 of s1 expires 2026-03-04T23:30:00+00:00 with 2 lesson(s) left",
            ),
            view(
                AlertKind::ZeroBalanceCheckin,
                "zero:s1:M2",
                "s1",
                Some("math"),
                "s1 checked in to M2 without balance (Exhausted)",
            ),
            view(
                AlertKind::CameraOffline,
                "camera:cam-n:17",
                "",
                None,
                "camera cam-n: offline",
            ),
            view(
                AlertKind::CheckInFailed,
                "parked:k",
                "",
                None,
                "student s1 at camera cam-n (face): database unavailable",
            ),
            view(
                AlertKind::ManyMakeups,
                "makeups:s1:2026-03",
                "s1",
                Some("math"),
                "student s1 has 5 make-ups booked in 2026-03, more than the school's 4",
            ),
        ];
        let expect = [
            "小明 在数学A班连续缺勤 3 次",
            "小明 只剩 1.5 节课",
            // 23:30 UTC on the 4th is the 5th at UTC+8
            "小明 的课时包 p1 将于 2026-03-05 到期，还剩 2 节课",
            "小明 在数学A班签到时没有可扣的课时：课时已用完",
            "摄像头 cam-n (北校区, front) 离线",
            "小明 在摄像头 cam-n (北校区, front)（人脸识别）的签到未能记录：database unavailable",
            "小明 在 2026-03 已安排补课 5 次，超过学校规定的 4 次",
        ];
        for (a, want) in cases.iter().zip(expect) {
            assert_eq!(alert_text(true, a, &names, 8 * 60), want, "{:?}", a.kind);
            assert!(!alert_text(false, a, &names, 8 * 60).is_empty());
        }
        // one that cannot be read: its kind's words and the message as stored
        let odd = view(AlertKind::LowBalance, "low:s1:2", "s1", None, "legacy text");
        assert_eq!(alert_text(true, &odd, &names, 0), "课时不足：legacy text");
        assert_eq!(
            alert_text(false, &odd, &names, 0),
            "Low balance: legacy text"
        );
    }
}
