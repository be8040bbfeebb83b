//! Notice texts in Simplified Chinese (`zh-CN`) and English. The ledger stores a kind and JSON
//! parameters; rendering happens here, at send time, in the recipient's language. Any language
//! tag starting with `zh` renders Chinese; every other tag renders English.

use crate::NotifyError;
use rollcall_domain::ledger::{fmt_units, UNITS_PER_LESSON};
use rollcall_ledger::NoticeKind;
use serde::Serialize;
use serde_json::Value;

/// Language of a rendered notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Lang {
    #[serde(rename = "zh-CN")]
    ZhCn,
    #[serde(rename = "en")]
    En,
}

impl Lang {
    pub fn of(tag: &str) -> Lang {
        if tag.trim().to_ascii_lowercase().starts_with("zh") {
            Lang::ZhCn
        } else {
            Lang::En
        }
    }
    pub fn tag(&self) -> &'static str {
        match self {
            Lang::ZhCn => "zh-CN",
            Lang::En => "en",
        }
    }
}

/// A rendered notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub language: Lang,
    pub subject: String,
    pub text: String,
}

fn get<'a>(kind: NoticeKind, p: &'a Value, key: &'static str) -> Result<&'a str, NotifyError> {
    p.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(NotifyError::Template { kind, missing: key })
}

/// What an arrival cost and what is left, when the notice says (`used_units`, `left_units`;
/// older notices lack them and say nothing about it): "1 lesson used, 7 left."
fn usage(p: &Value, zh: bool) -> String {
    let (Some(used), Some(left)) = (
        p.get("used_units").and_then(Value::as_i64),
        p.get("left_units").and_then(Value::as_i64),
    ) else {
        return String::new();
    };
    let (u, l, owed) = (
        fmt_units(used),
        fmt_units(left.max(0)),
        fmt_units(-left.min(0)),
    );
    match (zh, used > 0, left >= 0) {
        (true, true, true) => format!("本次扣除{u}节课时，剩余{l}节。"),
        (true, true, false) => format!("本次扣除{u}节课时，已欠{owed}节，请及时续费。"),
        (true, false, true) => format!("本次未扣课时，剩余{l}节。"),
        (true, false, false) => format!("本次未扣课时，已欠{owed}节，请及时续费。"),
        (false, used_some, covered) => {
            let first = if !used_some {
                "No lesson was deducted".to_string()
            } else if used == UNITS_PER_LESSON {
                "1 lesson used".to_string()
            } else {
                format!("{u} lessons used")
            };
            if covered {
                format!(" {first}, {l} left.")
            } else {
                format!(" {first}; {owed} owed, please renew the package.")
            }
        }
    }
}

/// `"2026-02-01T00:00:00Z"` → `"2026-02-01"`; other values as they are.
fn date_of(s: &str) -> &str {
    s.get(..10)
        .filter(|d| d.as_bytes().get(4) == Some(&b'-'))
        .unwrap_or(s)
}

/// Renders a notice; a parameter the kind needs and the notice lacks is a
/// [`NotifyError::Template`] (the dispatcher dead-letters it: retrying cannot help).
pub fn render(kind: NoticeKind, language: &str, p: &Value) -> Result<Rendered, NotifyError> {
    let lang = Lang::of(language);
    let g = |k| get(kind, p, k);
    let zh = lang == Lang::ZhCn;
    let (subject, text) = match kind {
        NoticeKind::Arrival => {
            let (s, c, t) = (g("student_name")?, g("class_name")?, g("local_time")?);
            let late = p.get("status").and_then(Value::as_str) == Some("late");
            if zh {
                (
                    format!("{s}已到校"),
                    format!(
                        "{s}已于{t}到达，参加{c}。{}{}",
                        if late { "（迟到）" } else { "" },
                        usage(p, true)
                    ),
                )
            } else {
                (
                    format!("{s} has arrived"),
                    format!(
                        "{s} arrived at {t} for {c}.{}{}",
                        if late { " (late)" } else { "" },
                        usage(p, false)
                    ),
                )
            }
        }
        NoticeKind::Absence => {
            let (s, c, t) = (g("student_name")?, g("class_name")?, g("local_time")?);
            if zh {
                (
                    format!("{s}未到课"),
                    format!("{s}尚未到达{c}（{t}）。如有疑问，请尽快联系学校。"),
                )
            } else {
                (
                    format!("{s} has not arrived"),
                    format!("{s} has not arrived for {c} ({t}). Please contact the school if this is unexpected."),
                )
            }
        }
        NoticeKind::AbsenceStreak => {
            let (s, c) = (g("student_name")?, g("class_name")?);
            let n = p
                .get("count")
                .and_then(Value::as_u64)
                .ok_or(NotifyError::Template {
                    kind,
                    missing: "count",
                })?;
            if zh {
                (
                    format!("{s}连续缺课"),
                    format!("{s}已连续{n}次缺席{c}，请与学校联系。"),
                )
            } else {
                (
                    format!("{s} missed {n} lessons in a row"),
                    format!("{s} has missed {n} consecutive lessons of {c}. Please get in touch with the school."),
                )
            }
        }
        NoticeKind::LowBalance => {
            let (s, left) = (g("student_name")?, g("left")?);
            if zh {
                (
                    format!("{s}课时余额不足"),
                    format!("{s}的课时余额仅剩{left}节，请及时续费。"),
                )
            } else {
                (
                    format!("{s}: {left} lesson(s) left"),
                    format!("{s} has {left} lesson(s) left. Please renew the package."),
                )
            }
        }
        NoticeKind::ExpiringPackage => {
            let (s, pkg, left) = (g("student_name")?, g("package_id")?, g("left")?);
            let d = date_of(g("expires_at")?);
            if zh {
                (
                    format!("{s}的课时包即将到期"),
                    format!("{s}的课时包{pkg}将于{d}到期，剩余{left}节课时。"),
                )
            } else {
                (
                    format!("{s}'s package expires soon"),
                    format!("Package {pkg} of {s} expires on {d} with {left} lesson(s) left."),
                )
            }
        }
        NoticeKind::ZeroBalance => {
            let (s, c) = (g("student_name")?, g("class_name")?);
            if zh {
                (
                    format!("{s}课时已用完"),
                    format!("{s}参加{c}时已无剩余课时，请及时续费。"),
                )
            } else {
                (
                    format!("{s} has no lessons left"),
                    format!("{s} attended {c} with no lessons left. Please renew the package."),
                )
            }
        }
        NoticeKind::ReviewNeeded => {
            let what = g("message")?;
            if zh {
                ("需要人工审核".into(), format!("需要人工审核：{what}"))
            } else {
                ("Review needed".into(), format!("Review needed: {what}"))
            }
        }
        NoticeKind::CheckInFailed => {
            let (m, t) = (g("message")?, g("local_time")?);
            if zh {
                (
                    "签到未能记录".into(),
                    format!("{t}的一次签到未能记录，已转入待处理：{m}。请在审核队列中处理。"),
                )
            } else {
                (
                    "A check-in could not be recorded".into(),
                    format!(
                        "A check-in at {t} could not be recorded and was set aside: {m}. \
                         Please resolve it from the review queue."
                    ),
                )
            }
        }
        NoticeKind::LessonReminder => {
            let (s, c) = (g("student_name")?, g("class_name")?);
            let (d, t) = (g("lesson_date")?, g("lesson_time")?);
            if zh {
                (
                    format!("上课提醒：{s}明天有课"),
                    format!("提醒：{s}明天（{d}）{t}有{c}课程。如需请假，请提前联系学校。"),
                )
            } else {
                (
                    format!("Reminder: {s} has a lesson tomorrow"),
                    format!("Reminder: {s} has {c} tomorrow ({d}) at {t}. Please tell the school in advance if {s} cannot come."),
                )
            }
        }
        NoticeKind::LessonChanged => {
            let (s, c) = (g("student_name")?, g("class_name")?);
            let (d, t, why) = (g("lesson_date")?, g("lesson_time")?, g("reason")?);
            if g("change")? == "moved" {
                let (nd, nt) = (g("new_date")?, g("new_time")?);
                if zh {
                    (
                        format!("调课通知：{s}的{c}课程时间有变"),
                        format!("{s}原定{d} {t}的{c}课程改至{nd} {nt}。原因：{why}"),
                    )
                } else {
                    (
                        format!("{s}'s lesson has moved"),
                        format!("{s}'s {c} lesson on {d} at {t} has moved to {nd} at {nt}. Reason: {why}"),
                    )
                }
            } else if zh {
                (
                    format!("停课通知：{s}的{c}课程取消"),
                    format!("{s}原定{d} {t}的{c}课程取消，不扣课时。原因：{why}"),
                )
            } else {
                (
                    format!("{s}'s lesson is cancelled"),
                    format!("{s}'s {c} lesson on {d} at {t} is cancelled; no lesson is deducted. Reason: {why}"),
                )
            }
        }
        NoticeKind::FeeDue => {
            let (s, o, d, a) = (
                g("student_name")?,
                g("order_id")?,
                g("due_on")?,
                g("amount")?,
            );
            if zh {
                (
                    format!("{s}的学费分期即将到期"),
                    format!("{s}的订单{o}有一期{a}元学费将于{d}到期，请按时缴纳。"),
                )
            } else {
                (
                    format!("{s}: a fee instalment is due soon"),
                    format!("An instalment of {a} for {s}'s order {o} is due on {d}. Thank you for paying on time."),
                )
            }
        }
        NoticeKind::CameraOffline => {
            let (cam, m) = (g("camera")?, g("message")?);
            if zh {
                (format!("摄像头{cam}离线"), format!("摄像头{cam}离线：{m}"))
            } else {
                (
                    format!("Camera {cam} is offline"),
                    format!("Camera {cam} is offline: {m}"),
                )
            }
        }
    };
    Ok(Rendered {
        language: lang,
        subject,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full() -> Value {
        json!({"student_name": "Miranda", "class_name": "Maths Y7", "local_time": "16:02",
               "count": 3, "left": "1.5", "package_id": "p1", "expires_at": "2026-02-01T00:00:00Z",
               "message": "track 7 at door A", "camera": "door-a", "status": "late",
               "lesson_date": "2026-02-02", "lesson_time": "16:00", "order_id": "o1",
               "due_on": "2026-02-05", "amount": "700.00", "change": "cancelled",
               "new_date": "2026-02-03", "new_time": "18:00", "reason": "teacher ill"})
    }

    #[test]
    fn every_kind_renders_in_both_languages() {
        for k in NoticeKind::ALL {
            let en = render(*k, "en", &full()).unwrap();
            let zh = render(*k, "zh-CN", &full()).unwrap();
            assert_eq!(en.language, Lang::En);
            assert_eq!(zh.language, Lang::ZhCn);
            assert!(!en.text.is_empty() && !zh.text.is_empty());
            assert_ne!(en.text, zh.text, "{k}");
            assert!(
                zh.text
                    .chars()
                    .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{k}: {}",
                zh.text
            );
        }
        // a cancelled and a moved lesson (issue 21 item 6)
        let c = render(NoticeKind::LessonChanged, "zh", &full()).unwrap();
        assert_eq!(
            c.text,
            "Miranda原定2026-02-02 16:00的Maths Y7课程取消，不扣课时。原因：teacher ill"
        );
        let mut moved = full();
        moved["change"] = json!("moved");
        let m = render(NoticeKind::LessonChanged, "en", &moved).unwrap();
        assert_eq!(
            m.text,
            "Miranda's Maths Y7 lesson on 2026-02-02 at 16:00 has moved to 2026-02-03 at 18:00. Reason: teacher ill"
        );
        let a = render(NoticeKind::Arrival, "zh", &full()).unwrap();
        assert_eq!(a.text, "Miranda已于16:02到达，参加Maths Y7。（迟到）");
        // what the lesson cost and what is left (issue 21)
        let mut p = full();
        p["used_units"] = json!(100);
        p["left_units"] = json!(700);
        let en = render(NoticeKind::Arrival, "en", &p).unwrap().text;
        assert_eq!(
            en,
            "Miranda arrived at 16:02 for Maths Y7. (late) 1 lesson used, 7 left."
        );
        let zh = render(NoticeKind::Arrival, "zh-CN", &p).unwrap().text;
        assert_eq!(
            zh,
            "Miranda已于16:02到达，参加Maths Y7。（迟到）本次扣除1节课时，剩余7节。"
        );
        p["used_units"] = json!(150);
        p["left_units"] = json!(-50);
        let en = render(NoticeKind::Arrival, "en", &p).unwrap().text;
        assert!(
            en.ends_with(" 1.5 lessons used; 0.5 owed, please renew the package."),
            "{en}"
        );
        p["used_units"] = json!(0);
        p["left_units"] = json!(0);
        let zh = render(NoticeKind::Arrival, "zh", &p).unwrap().text;
        assert!(zh.ends_with("本次未扣课时，剩余0节。"), "{zh}");
        let e = render(NoticeKind::ExpiringPackage, "en-GB", &full()).unwrap();
        assert_eq!(
            e.text,
            "Package p1 of Miranda expires on 2026-02-01 with 1.5 lesson(s) left."
        );
        // unknown languages fall back to English
        assert_eq!(
            render(NoticeKind::Absence, "fr", &full()).unwrap().language,
            Lang::En
        );
    }

    #[test]
    fn a_missing_parameter_is_a_typed_error() {
        let e = render(NoticeKind::Arrival, "en", &json!({"student_name": "M"})).unwrap_err();
        assert!(
            matches!(
                e,
                NotifyError::Template {
                    missing: "class_name",
                    ..
                }
            ),
            "{e}"
        );
        assert!(render(
            NoticeKind::AbsenceStreak,
            "en",
            &json!({"student_name": "M", "class_name": "c", "count": "x"})
        )
        .is_err());
    }
}
