//! Typed summaries of what `rollcall run-scenario --json` and `rollcall bench crash --json`
//! print. Every field a test reads is required: a summary without it fails to parse, so an
//! assertion such as "delivered equals distinct keys" cannot pass on two missing fields. A
//! field that may be `null` is an `Option` that must still be present ([`nullable`]).

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An `Option` field that must be present (its value may be `null`): serde's derive treats a
/// missing `Option` as `None`, which would hide a renamed or dropped field.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

/// `rollcall run-scenario --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ScenarioSummary {
    pub school: String,
    pub enrolled: Vec<Enrolled>,
    pub check_ins: Vec<CheckIn>,
    pub deductions: Vec<Deduction>,
    pub absences: Vec<Absence>,
    pub alerts: Vec<Alert>,
    pub notifications: Vec<Notification>,
    pub notification_summary: NotificationSummary,
    pub score: Score,
    pub frames: u64,
    pub ledger: LedgerDump,
}

/// A student enrolled at the start of the run.
#[derive(Debug, Clone, Deserialize)]
pub struct Enrolled {
    pub templates: u64,
}

/// A check-in the run sent to the ledger.
#[derive(Debug, Clone, Deserialize)]
pub struct CheckIn {
    pub student: String,
    /// `None`: no lesson matched (an unscheduled visit).
    #[serde(deserialize_with = "nullable")]
    pub lesson: Option<String>,
    /// `present`, `late`, … (`None` when no lesson matched).
    #[serde(deserialize_with = "nullable")]
    pub status: Option<String>,
    /// What the ledger did: `recorded`, `duplicate`, …
    pub ledger: String,
}

/// A deduction from a student's package.
#[derive(Debug, Clone, Deserialize)]
pub struct Deduction {
    pub student: String,
    #[serde(deserialize_with = "nullable")]
    pub lesson: Option<String>,
    /// Lessons deducted (0.5 for a half-charged absence).
    pub lessons: f64,
}

/// An absence recorded at a lesson's end.
#[derive(Debug, Clone, Deserialize)]
pub struct Absence {
    pub student: String,
    pub lesson: String,
    pub status: String,
}

/// An alert the run raised.
#[derive(Debug, Clone, Deserialize)]
pub struct Alert {
    pub kind: String,
    #[serde(deserialize_with = "nullable")]
    pub student: Option<String>,
}

/// A notification delivered during the run.
#[derive(Debug, Clone, Deserialize)]
pub struct Notification {
    pub kind: String,
    /// `None` for a notice about no student (a camera, the front desk's digest).
    #[serde(deserialize_with = "nullable")]
    pub student: Option<String>,
    pub to: String,
    pub key: String,
}

/// Deliveries against distinct delivery keys.
#[derive(Debug, Clone, Deserialize)]
pub struct NotificationSummary {
    pub delivered: u64,
    pub distinct_keys: u64,
}

/// The run scored against the scenario's ground truth.
#[derive(Debug, Clone, Deserialize)]
pub struct Score {
    pub expected_check_ins: u64,
    pub correct_check_ins: u64,
    pub check_in_precision: f64,
    pub check_in_recall: f64,
    pub false_check_ins: u64,
    pub stranger_check_ins: u64,
    pub duplicate_deductions: u64,
    pub missed_students: Vec<Value>,
    pub expected_absences: u64,
    pub correct_absences: u64,
    pub strangers_in_scenario: u64,
}

/// The ledger as comparable sorted lists (`run-scenario` and `bench crash` print the same
/// shape): attendance `[student, lesson, status]`, deductions `[student, lesson, package,
/// units]`, alerts `[kind, dedup key]`, notices `[notice id, recipient, channel]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LedgerDump {
    pub attendance: Vec<(String, String, String)>,
    pub deductions: Vec<Value>,
    pub alerts: Vec<(String, String)>,
    pub notices: Vec<(String, String, String)>,
}

impl LedgerDump {
    /// Attendance rows with the student there (`present` or `late`).
    pub fn attended(&self) -> usize {
        self.attendance
            .iter()
            .filter(|(_, _, st)| st == "present" || st == "late")
            .count()
    }
}

/// `rollcall bench crash --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct CrashSummary {
    pub ok: bool,
    /// `sqlite` or `postgres`.
    pub database: String,
    /// `embedded` or `qdrant-server`.
    pub gallery: String,
    /// Serve processes (one per camera, or one).
    pub serves: u64,
    pub kills: u64,
    pub expected_check_ins: u64,
    pub check_ins: u64,
    pub lost_check_ins: u64,
    pub missed_in_gaps: u64,
    pub duplicate_deductions: u64,
    pub stranger_check_ins: u64,
    pub expected_notices: u64,
    pub lost_notices: u64,
    pub duplicate_notices: u64,
    pub gallery_ok: bool,
    pub ledger_ok: bool,
    pub gaps_visible: bool,
    pub ledger: LedgerDump,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_field_fails_even_when_it_may_be_null() {
        let ok = r#"{"kind":"arrival","student":null,"to":"x","key":"k"}"#;
        let n: Notification = serde_json::from_str(ok).unwrap();
        assert_eq!(n.student, None);
        let missing = r#"{"kind":"arrival","to":"x","key":"k"}"#;
        let e = serde_json::from_str::<Notification>(missing).unwrap_err();
        assert!(e.to_string().contains("student"), "{e}");
        let e = serde_json::from_str::<NotificationSummary>(r#"{"delivered":3}"#).unwrap_err();
        assert!(e.to_string().contains("distinct_keys"), "{e}");
    }
}
