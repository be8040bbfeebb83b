//! Ledger rules (issue 4): lesson packages, exactly-once deductions, absences, alerts, refunds.
//!
//! Everything here is pure: time enters as an argument (`at`, `now`), quantities are integers.
//!
//! * Lesson quantities are [`Units`]: hundredths of a lesson ([`UNITS_PER_LESSON`] = 100), so a
//!   "half" absence charge is exact.
//! * Money is [`Cents`]: integer minor units of the school's currency. No floats anywhere.
//! * The ledger is append-only: balances are derived by summing entries ([`derive_balances`]),
//!   corrections are reversal entries, never edits.
//!
//! The database adapter (`rollcall-ledger`) applies these rules inside transactions; [`Book`] is an
//! in-memory reference implementation of the same rules used by the property tests (and usable as
//! an oracle by adapter tests).

pub use crate::alert_data::AlertData;
use crate::money::{compute_refund, PackageMoney, RefundPolicy, RefundTier};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Hundredths of a lesson.
pub type Units = i64;
/// Integer minor units of money (cents).
pub type Cents = i64;
/// One whole lesson in [`Units`].
pub const UNITS_PER_LESSON: Units = 100;

macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident { $($var:ident => $s:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($var),+ }

        impl $name {
            /// Stable lower-case code (also the database representation).
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }
            /// Parses the code written by [`Self::as_str`].
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$var),)+ _ => None }
            }
            /// Every variant.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(
    /// Kind of an append-only ledger entry.
    EntryKind { Purchase => "purchase", Deduction => "deduction", Reversal => "reversal",
                Refund => "refund", Adjustment => "adjustment" }
);
str_enum!(
    /// Attendance of a booked student at one lesson.
    AttendanceStatus { Present => "present", Late => "late", Absent => "absent",
                       Excused => "excused", LeftEarly => "left_early" }
);
str_enum!(
    /// Who or what reported the attendance.
    AttendanceSource { Face => "face", Review => "review", Manual => "manual", Qr => "qr" }
);
str_enum!(
    /// How much of a lesson an absence costs.
    Charge { Free => "free", Half => "half", Full => "full" }
);
str_enum!(
    /// How a payment was made (or a refund paid out).
    PaymentMethod { Cash => "cash", BankCard => "bank_card", WechatPay => "wechat_pay",
                    Alipay => "alipay", BankTransfer => "bank_transfer", Other => "other" }
);
str_enum!(
    /// Life cycle of a refund request: asked by one staff member, decided by another.
    RefundState { Pending => "pending", Approved => "approved", Rejected => "rejected" }
);
str_enum!(
    /// Kind of an anomaly alert.
    AlertKind { AbsenceStreak => "absence_streak", LowBalance => "low_balance",
                ExpiringPackage => "expiring_package", ZeroBalanceCheckin => "zero_balance_checkin",
                CameraOffline => "camera_offline", CheckInFailed => "check_in_failed",
                ManyMakeups => "many_makeups" }
);
str_enum!(
    /// Life cycle of an alert.
    AlertState { Open => "open", Acknowledged => "acknowledged", Resolved => "resolved" }
);

impl AttendanceStatus {
    /// The student was there (present, late or left early).
    pub fn attended(&self) -> bool {
        matches!(
            self,
            AttendanceStatus::Present | AttendanceStatus::Late | AttendanceStatus::LeftEarly
        )
    }
}

impl Charge {
    pub fn units(&self) -> Units {
        match self {
            Charge::Free => 0,
            Charge::Half => UNITS_PER_LESSON / 2,
            Charge::Full => UNITS_PER_LESSON,
        }
    }
}

/// Check-in and finalisation windows of a class, in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LessonTiming {
    /// A check-in counts from `start − early_minutes`.
    pub early_minutes: i64,
    /// A check-in after `start + late_grace_minutes` is late.
    pub late_grace_minutes: i64,
    /// Absences are finalised at `end + finalize_grace_minutes`.
    pub finalize_grace_minutes: i64,
}

impl Default for LessonTiming {
    fn default() -> Self {
        Self {
            early_minutes: 15,
            late_grace_minutes: 5,
            finalize_grace_minutes: 15,
        }
    }
}

/// Whether and how much an absence deducts (per class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbsencePolicy {
    /// No approved leave.
    pub unexcused: Charge,
    /// Approved leave requested at least `notice_hours` before the start.
    pub excused: Charge,
    /// Approved leave requested with less notice than `notice_hours`.
    pub short_notice: Charge,
    pub notice_hours: i64,
}

impl Default for AbsencePolicy {
    fn default() -> Self {
        Self {
            unexcused: Charge::Full,
            excused: Charge::Free,
            short_notice: Charge::Half,
            notice_hours: 24,
        }
    }
}

/// Per-class rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClassPolicy {
    pub timing: LessonTiming,
    pub absence: AbsencePolicy,
}

/// What happens when a check-in finds no usable package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum OverdraftPolicy {
    /// No deduction, an alert.
    #[default]
    Deny,
    /// Deduct anyway, recorded as an overdraft entry (no package), down to `−max_lessons`.
    Allow { max_lessons: i64 },
}

/// Alert thresholds (per school).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertPolicy {
    /// Consecutive absences in one class that raise an alert.
    pub absence_streak: u32,
    /// Available balance at or below this raises an alert.
    pub low_balance_units: Units,
    /// A package expiring within this many days (with lessons left) raises an alert.
    pub expiry_warning_days: i64,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        Self {
            absence_streak: 3,
            low_balance_units: 2 * UNITS_PER_LESSON,
            expiry_warning_days: 14,
        }
    }
}

/// Refund rule (per school).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRule {
    /// Before the first lesson, the school keeps this percentage of the price paid.
    pub keep_before_first_pct: u32,
    /// Once this percentage of the package is consumed, no refund.
    pub no_refund_after_consumed_pct: u32,
    /// Otherwise: remaining × unit price minus this fee.
    pub fee_cents: Cents,
}

impl Default for RefundRule {
    fn default() -> Self {
        Self {
            keep_before_first_pct: 10,
            no_refund_after_consumed_pct: 50,
            fee_cents: 0,
        }
    }
}

/// Per-school rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SchoolPolicy {
    pub overdraft: OverdraftPolicy,
    pub alerts: AlertPolicy,
    pub refund: RefundRule,
}

// ---------------------------------------------------------------------------------------------
// Check-in → lesson
// ---------------------------------------------------------------------------------------------

/// A lesson a student is booked into (enrolled class or make-up booking).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookedLesson {
    pub lesson_id: String,
    pub class_id: String,
    pub campus_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub timing: LessonTiming,
}

impl BookedLesson {
    /// First instant a check-in counts for this lesson.
    pub fn window_start(&self) -> DateTime<Utc> {
        self.start - Duration::minutes(self.timing.early_minutes.max(0))
    }
    /// Instant from which absences are finalised.
    pub fn finalize_at(&self) -> DateTime<Utc> {
        self.end + Duration::minutes(self.timing.finalize_grace_minutes.max(0))
    }
}

/// Status of a check-in at `t` for a lesson, or `None` outside `[start − early, end]`.
pub fn classify_checkin(lesson: &BookedLesson, t: DateTime<Utc>) -> Option<AttendanceStatus> {
    if t < lesson.window_start() || t > lesson.end {
        return None;
    }
    if t > lesson.start + Duration::minutes(lesson.timing.late_grace_minutes.max(0)) {
        Some(AttendanceStatus::Late)
    } else {
        Some(AttendanceStatus::Present)
    }
}

/// The booked lesson a check-in at `t` belongs to: among lessons whose window contains `t`, the
/// one whose start is closest to `t` (ties: earlier start, then lesson id). Deterministic and
/// independent of the order of `lessons`.
pub fn match_checkin(
    lessons: &[BookedLesson],
    t: DateTime<Utc>,
) -> Option<(&BookedLesson, AttendanceStatus)> {
    lessons
        .iter()
        .filter_map(|l| classify_checkin(l, t).map(|s| (l, s)))
        .min_by(|(a, _), (b, _)| {
            let da = (t - a.start).num_milliseconds().abs();
            let db = (t - b.start).num_milliseconds().abs();
            da.cmp(&db)
                .then(a.start.cmp(&b.start))
                .then(a.lesson_id.cmp(&b.lesson_id))
        })
}

// ---------------------------------------------------------------------------------------------
// Packages and deductions
// ---------------------------------------------------------------------------------------------

/// A lesson package with its derived balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageState {
    pub package_id: String,
    /// `None`: usable on every campus of the school.
    pub campus_id: Option<String>,
    pub bought_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Paid lessons (gift lessons are [`PackageState::gift_lessons`]).
    pub lessons_bought: i64,
    /// The list price per lesson (what the package was advertised at; informational: money
    /// follows [`PackageState::price_paid_cents`]).
    pub unit_price_cents: Cents,
    /// What the paid lessons cost after any discount: the base of revenue and refunds.
    pub price_paid_cents: Cents,
    /// Gift lessons: consumed after the paid ones, never revenue, never refunded.
    #[serde(default)]
    pub gift_lessons: i64,
    /// Derived from the ledger entries of this package.
    pub balance_units: Units,
    /// Units used by lesson charges net of reversals (derived from the ledger; adjustments and
    /// refunds are not use).
    #[serde(default)]
    pub used_units: Units,
}

impl PackageState {
    pub fn expired(&self, at: DateTime<Utc>) -> bool {
        at >= self.expires_at
    }
    pub fn covers_campus(&self, campus: &str) -> bool {
        self.campus_id.as_deref().is_none_or(|c| c == campus)
    }
    /// Can pay `units` for a lesson on `campus` at `at`.
    pub fn usable(&self, campus: &str, at: DateTime<Utc>, units: Units) -> bool {
        !self.expired(at)
            && self.bought_at <= at
            && self.covers_campus(campus)
            && self.balance_units >= units.max(1)
    }
    /// The package's money: paid units bought with the price paid, then gift units.
    pub fn money(&self) -> PackageMoney {
        PackageMoney {
            paid_units: self.lessons_bought * UNITS_PER_LESSON,
            gift_units: self.gift_lessons.max(0) * UNITS_PER_LESSON,
            paid_cents: self.price_paid_cents,
        }
    }
    /// Units the purchase put in: paid and gift lessons.
    pub fn purchased_units(&self) -> Units {
        (self.lessons_bought + self.gift_lessons.max(0)) * UNITS_PER_LESSON
    }
    /// Revenue a charge of `units` from this package earns now (paid price, paid units first,
    /// gifts earn nothing).
    pub fn charge_revenue(&self, units: Units) -> Cents {
        self.money().revenue_of(self.used_units, units)
    }
}

/// The package to deduct `units` from: the usable one expiring first (ties: campus-scoped before
/// school-wide, then earlier purchase, then id).
pub fn choose_package<'a>(
    packages: &'a [PackageState],
    campus: &str,
    at: DateTime<Utc>,
    units: Units,
) -> Option<&'a PackageState> {
    packages
        .iter()
        .filter(|p| p.usable(campus, at, units))
        .min_by(|a, b| {
            a.expires_at
                .cmp(&b.expires_at)
                .then(a.campus_id.is_none().cmp(&b.campus_id.is_none()))
                .then(a.bought_at.cmp(&b.bought_at))
                .then(a.package_id.cmp(&b.package_id))
        })
}

/// Why nothing could be deducted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InsufficientReason {
    /// The student has no package at all for this campus.
    NoPackage,
    /// Lessons are left only in expired packages.
    Expired,
    /// Every package for this campus is used up.
    Exhausted,
}

/// What a charge of `units` does to the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum DeductionDecision {
    /// Nothing to deduct (free absence).
    Nothing,
    FromPackage {
        package_id: String,
        units: Units,
    },
    /// Deducted without a package, allowed by the school's overdraft policy.
    Overdraft {
        units: Units,
    },
    Insufficient {
        reason: InsufficientReason,
        units: Units,
    },
}

impl DeductionDecision {
    /// Units taken from the student's balance.
    pub fn deducted_units(&self) -> Units {
        match self {
            DeductionDecision::FromPackage { units, .. }
            | DeductionDecision::Overdraft { units } => *units,
            _ => 0,
        }
    }
}

/// Decides how to charge `units` for a lesson on `campus` at `at`. `overdraft_units` is the
/// student's current debt (≥ 0, sum of package-less entries negated).
pub fn decide_deduction(
    packages: &[PackageState],
    campus: &str,
    at: DateTime<Utc>,
    units: Units,
    overdraft_units: Units,
    overdraft: OverdraftPolicy,
) -> DeductionDecision {
    if units <= 0 {
        return DeductionDecision::Nothing;
    }
    if let Some(p) = choose_package(packages, campus, at, units) {
        return DeductionDecision::FromPackage {
            package_id: p.package_id.clone(),
            units,
        };
    }
    if let OverdraftPolicy::Allow { max_lessons } = overdraft {
        if overdraft_units + units <= max_lessons.max(0) * UNITS_PER_LESSON {
            return DeductionDecision::Overdraft { units };
        }
    }
    let campus_pkgs: Vec<&PackageState> = packages
        .iter()
        .filter(|p| p.covers_campus(campus) && p.bought_at <= at)
        .collect();
    let reason = if campus_pkgs.is_empty() {
        InsufficientReason::NoPackage
    } else if campus_pkgs
        .iter()
        .any(|p| p.expired(at) && p.balance_units >= units)
    {
        InsufficientReason::Expired
    } else {
        InsufficientReason::Exhausted
    };
    DeductionDecision::Insufficient { reason, units }
}

// ---------------------------------------------------------------------------------------------
// Ledger entries and balances
// ---------------------------------------------------------------------------------------------

/// One append-only ledger entry. `units` is signed: + adds lessons (purchase, reversal),
/// − removes them (deduction, refund).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    pub student_id: String,
    pub kind: EntryKind,
    /// `None` for overdraft deductions and their reversals.
    pub package_id: Option<String>,
    pub lesson_id: Option<String>,
    pub units: Units,
    /// Money recognised (+ purchase, − refund; deductions carry the revenue recognised as −).
    pub amount_cents: Cents,
    pub idempotency_key: String,
}

/// Balances derived from entries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Balances {
    /// Per package (key `None`: overdraft, ≤ 0).
    pub per_package: BTreeMap<Option<String>, Units>,
}

impl Balances {
    pub fn package(&self, id: &str) -> Units {
        self.per_package
            .get(&Some(id.to_string()))
            .copied()
            .unwrap_or(0)
    }
    /// Debt from overdraft deductions (≥ 0).
    pub fn overdraft_units(&self) -> Units {
        -self.per_package.get(&None).copied().unwrap_or(0).min(0)
    }
}

/// Sums the entries of one student per package.
pub fn derive_balances<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Balances {
    let mut b = Balances::default();
    for e in entries {
        *b.per_package.entry(e.package_id.clone()).or_insert(0) += e.units;
    }
    b
}

/// Available balance: lessons left in packages usable at `at` (any campus), minus overdraft debt.
pub fn available_units(
    packages: &[PackageState],
    overdraft_units: Units,
    at: DateTime<Utc>,
) -> Units {
    packages
        .iter()
        .filter(|p| !p.expired(at))
        .map(|p| p.balance_units.max(0))
        .sum::<Units>()
        - overdraft_units
}

/// Net units charged for one lesson by these entries (deductions + reversals), ≤ 0.
pub fn net_lesson_units<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    lesson_id: &str,
) -> Units {
    entries
        .into_iter()
        .filter(|e| e.lesson_id.as_deref() == Some(lesson_id))
        .filter(|e| matches!(e.kind, EntryKind::Deduction | EntryKind::Reversal))
        .map(|e| e.units)
        .sum()
}

/// Idempotency key of the `nth` deduction (0 = first; n > 0 after n reversals) for a lesson.
pub fn deduction_key(student: &str, lesson: &str, nth: u32) -> String {
    if nth == 0 {
        format!("deduct:{student}:{lesson}")
    } else {
        format!("deduct:{student}:{lesson}:r{nth}")
    }
}

/// Idempotency key of the reversal of the entry with key `original`.
pub fn reversal_key(original: &str) -> String {
    format!("reverse:{original}")
}

// ---------------------------------------------------------------------------------------------
// Absences
// ---------------------------------------------------------------------------------------------

/// A leave request for one lesson.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leave {
    pub approved: bool,
    pub requested_at: DateTime<Utc>,
}

/// Outcome of finalising a booked lesson without a check-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbsenceOutcome {
    pub status: AttendanceStatus,
    pub charge: Charge,
}

/// Absence finalisation for a booked student with no attendance record: `None` before
/// `end + grace`; otherwise absent (or excused with an approved leave) with the class's charge.
pub fn finalize_absence(
    lesson: &BookedLesson,
    policy: &AbsencePolicy,
    leave: Option<&Leave>,
    now: DateTime<Utc>,
) -> Option<AbsenceOutcome> {
    if now < lesson.finalize_at() {
        return None;
    }
    Some(match leave.filter(|l| l.approved) {
        None => AbsenceOutcome {
            status: AttendanceStatus::Absent,
            charge: policy.unexcused,
        },
        Some(l) => {
            let enough =
                l.requested_at + Duration::hours(policy.notice_hours.max(0)) <= lesson.start;
            AbsenceOutcome {
                status: AttendanceStatus::Excused,
                charge: if enough {
                    policy.excused
                } else {
                    policy.short_notice
                },
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Alerts
// ---------------------------------------------------------------------------------------------

/// A run of consecutive absences in one class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Streak {
    /// First lesson of the run: identifies the streak, so the alert is raised once per streak.
    pub first_lesson_id: String,
    pub len: u32,
}

/// Streaks of at least `n` consecutive absences in a chronological history of one student in one
/// class. Absent extends a run; excused neither extends nor breaks it; attending breaks it.
pub fn absence_streaks(history: &[(String, AttendanceStatus)], n: u32) -> Vec<Streak> {
    let mut out = Vec::new();
    let mut cur: Option<Streak> = None;
    let flush = |cur: &mut Option<Streak>, out: &mut Vec<Streak>| {
        if let Some(s) = cur.take() {
            if s.len >= n.max(1) {
                out.push(s);
            }
        }
    };
    for (lesson, status) in history {
        match status {
            AttendanceStatus::Absent => match &mut cur {
                Some(s) => s.len += 1,
                None => {
                    cur = Some(Streak {
                        first_lesson_id: lesson.clone(),
                        len: 1,
                    })
                }
            },
            AttendanceStatus::Excused => {}
            _ => flush(&mut cur, &mut out),
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// An alert to raise; `dedup_key` is unique per school, so raising it twice is a no-op.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AlertDraft {
    pub kind: AlertKind,
    pub dedup_key: String,
    pub student_id: String,
    pub class_id: Option<String>,
    pub package_id: Option<String>,
    /// In English, for logs and notices (readers of the staff app see [`AlertDraft::data`] in
    /// their own language).
    pub message: String,
    /// What the alert is about, as data (counts, dates, ids).
    #[serde(default)]
    pub data: AlertData,
}

pub fn streak_alert(student: &str, class: &str, s: &Streak) -> AlertDraft {
    AlertDraft {
        kind: AlertKind::AbsenceStreak,
        dedup_key: format!("streak:{student}:{class}:{}", s.first_lesson_id),
        student_id: student.into(),
        class_id: Some(class.into()),
        package_id: None,
        message: format!("{student} missed {} consecutive lessons of {class}", s.len),
        data: AlertData {
            missed: Some(s.len),
            lesson_id: Some(s.first_lesson_id.clone()),
            ..AlertData::default()
        },
    }
}

/// Low balance alert. `purchases` is the number of purchase entries of the student so far: one
/// alert per episode between purchases.
pub fn low_balance_alert(
    student: &str,
    available: Units,
    purchases: u64,
    policy: &AlertPolicy,
) -> Option<AlertDraft> {
    (available <= policy.low_balance_units).then(|| AlertDraft {
        kind: AlertKind::LowBalance,
        dedup_key: format!("low:{student}:{purchases}"),
        student_id: student.into(),
        class_id: None,
        package_id: None,
        message: format!("{student} has {} lesson(s) left", fmt_units(available)),
        data: AlertData {
            units: Some(available),
            ..AlertData::default()
        },
    })
}

/// Package expiring within the warning period with lessons left.
pub fn expiring_alert(
    student: &str,
    p: &PackageState,
    now: DateTime<Utc>,
    policy: &AlertPolicy,
) -> Option<AlertDraft> {
    let soon = !p.expired(now) && p.expires_at - now <= Duration::days(policy.expiry_warning_days);
    (soon && p.balance_units > 0).then(|| AlertDraft {
        kind: AlertKind::ExpiringPackage,
        dedup_key: format!("expiring:{}", p.package_id),
        student_id: student.into(),
        class_id: None,
        package_id: Some(p.package_id.clone()),
        message: format!(
            "package {} of {student} expires {} with {} lesson(s) left",
            p.package_id,
            p.expires_at.to_rfc3339(),
            fmt_units(p.balance_units)
        ),
        data: AlertData {
            units: Some(p.balance_units),
            expires_at: Some(p.expires_at),
            ..AlertData::default()
        },
    })
}

/// A check-in that could not be paid.
pub fn zero_balance_alert(
    student: &str,
    class: &str,
    lesson: &str,
    reason: InsufficientReason,
) -> AlertDraft {
    AlertDraft {
        kind: AlertKind::ZeroBalanceCheckin,
        dedup_key: format!("zero:{student}:{lesson}"),
        student_id: student.into(),
        class_id: Some(class.into()),
        package_id: None,
        message: format!("{student} checked in to {lesson} without balance ({reason:?})"),
        data: AlertData {
            reason: Some(reason.as_str().into()),
            lesson_id: Some(lesson.into()),
            ..AlertData::default()
        },
    }
}

/// `250` → `"2.5"`.
pub fn fmt_units(u: Units) -> String {
    let sign = if u < 0 { "-" } else { "" };
    let a = u.unsigned_abs();
    let (i, f) = (a / UNITS_PER_LESSON as u64, a % UNITS_PER_LESSON as u64);
    if f == 0 {
        format!("{sign}{i}")
    } else {
        format!("{sign}{i}.{}", format!("{f:02}").trim_end_matches('0'))
    }
}

// ---------------------------------------------------------------------------------------------
// Refunds
// ---------------------------------------------------------------------------------------------

/// A computed refund of one package under a [`RefundPolicy`] (see [`crate::money`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundQuote {
    pub eligible: bool,
    pub refund_cents: Cents,
    /// Units removed from the package by the refund: its whole remaining balance when eligible.
    pub units: Units,
    pub rule: RefundCase,
    /// What was paid for the paid lessons.
    pub paid_cents: Cents,
    /// Paid lessons' units used so far (gifts excluded).
    pub used_paid_units: Units,
    pub paid_units: Units,
    /// Paid money not yet earned: the base of the refund.
    pub unearned_cents: Cents,
    /// The tier applied (index into the policy's table); `None`: past the last tier.
    pub tier: Option<usize>,
    /// What the school keeps by the tier, and the handling fee.
    pub kept_cents: Cents,
    pub fee_cents: Cents,
    /// Gift units removed with the refund (never refunded).
    pub gift_units_removed: Units,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundCase {
    BeforeFirstLesson,
    TooMuchConsumed,
    Remaining,
    NothingLeft,
}

impl RefundRule {
    /// The tier table this (older, three-number) rule stands for, the starting policy of a
    /// school that has not edited its table: nothing used → keep `keep_before_first_pct`; less
    /// than `no_refund_after_consumed_pct` % of the paid lessons used (up to one point below,
    /// in whole percent) → keep the same share of what is not yet earned (a share that fell
    /// with use would refund more to a student who used a lesson than to one who used none);
    /// from that share on → no refund (课程完成50%后不退费); the fee on every refund.
    pub fn to_policy(&self) -> RefundPolicy {
        let keep = self.keep_before_first_pct.min(100);
        let mut tiers = vec![RefundTier {
            max_used_pct: 0,
            keep_pct: keep,
        }];
        let below = self.no_refund_after_consumed_pct.min(101).saturating_sub(1);
        if below > 0 {
            tiers.push(RefundTier {
                max_used_pct: below,
                keep_pct: keep,
            });
        }
        RefundPolicy {
            tiers,
            fee_cents: self.fee_cents.max(0),
        }
    }
}

/// Applies a refund policy to a package: on what was paid and not yet earned (gifts neither
/// earn nor refund), by the tier of the share of paid lessons used, less the fee.
pub fn quote_refund(policy: &RefundPolicy, p: &PackageState) -> RefundQuote {
    let money = p.money();
    let c = compute_refund(policy, &money, p.used_units);
    let remaining = p.balance_units.max(0);
    let used_paid = p.used_units.clamp(0, money.paid_units);
    let rule = if remaining == 0 {
        RefundCase::NothingLeft
    } else if c.tier.is_none() {
        RefundCase::TooMuchConsumed
    } else if p.used_units <= 0 {
        RefundCase::BeforeFirstLesson
    } else {
        RefundCase::Remaining
    };
    let eligible = matches!(rule, RefundCase::BeforeFirstLesson | RefundCase::Remaining);
    RefundQuote {
        eligible,
        refund_cents: if eligible { c.refund_cents } else { 0 },
        units: if eligible { remaining } else { 0 },
        rule,
        paid_cents: money.paid_cents,
        used_paid_units: used_paid,
        paid_units: money.paid_units,
        unearned_cents: c.unearned_cents,
        tier: c.tier,
        kept_cents: if eligible {
            c.kept_cents
        } else {
            c.unearned_cents
        },
        fee_cents: if eligible { c.fee_cents } else { 0 },
        gift_units_removed: if eligible {
            c.gift_units_removed.min(remaining)
        } else {
            0
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Reference implementation
// ---------------------------------------------------------------------------------------------

/// Result of one check-in, as reported to callers (JSON-able).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CheckInOutcome {
    /// First check-in for a booked lesson: attendance recorded, deduction decided.
    Recorded {
        lesson_id: String,
        class_id: String,
        status: AttendanceStatus,
        deduction: DeductionDecision,
    },
    /// The student already has an attendance record for this lesson: nothing changes.
    AlreadyRecorded {
        lesson_id: String,
        status: AttendanceStatus,
    },
    /// No booked lesson around this time: recorded as a visit, nothing deducted.
    Unscheduled,
    /// This exact event was already processed (same idempotency key).
    DuplicateEvent,
}

/// In-memory ledger applying the rules above, single student set, single school. The store does
/// the same thing inside database transactions; this is the executable specification.
#[derive(Debug, Clone, Default)]
pub struct Book {
    pub policy: SchoolPolicy,
    pub class_policy: BTreeMap<String, ClassPolicy>,
    /// Student → booked lessons.
    pub bookings: BTreeMap<String, Vec<BookedLesson>>,
    /// Student → packages (balances kept in sync with `entries`).
    pub packages: BTreeMap<String, Vec<PackageState>>,
    pub entries: Vec<Entry>,
    pub attendance: BTreeMap<(String, String), AttendanceStatus>,
    pub leaves: BTreeMap<(String, String), Leave>,
    pub alerts: BTreeMap<String, AlertDraft>,
    seen_events: BTreeSet<String>,
    keys: BTreeSet<String>,
}

impl Book {
    /// Adds a package and its purchase entry.
    pub fn purchase(&mut self, student: &str, mut p: PackageState) {
        let key = format!("purchase:{}", p.package_id);
        if !self.keys.insert(key.clone()) {
            return;
        }
        p.balance_units = p.purchased_units();
        p.used_units = 0;
        self.entries.push(Entry {
            student_id: student.into(),
            kind: EntryKind::Purchase,
            package_id: Some(p.package_id.clone()),
            lesson_id: None,
            units: p.balance_units,
            amount_cents: p.price_paid_cents,
            idempotency_key: key,
        });
        self.packages.entry(student.into()).or_default().push(p);
    }

    fn student_entries<'a>(&'a self, student: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| e.student_id == student)
    }

    /// Appends an entry unless its key exists; keeps package balances in sync.
    fn append(&mut self, e: Entry) -> bool {
        if !self.keys.insert(e.idempotency_key.clone()) {
            return false;
        }
        if let Some(pid) = &e.package_id {
            if let Some(p) = self
                .packages
                .get_mut(&e.student_id)
                .and_then(|v| v.iter_mut().find(|p| &p.package_id == pid))
            {
                p.balance_units += e.units;
                if matches!(e.kind, EntryKind::Deduction | EntryKind::Reversal) {
                    p.used_units -= e.units;
                }
            }
        }
        self.entries.push(e);
        true
    }

    /// Available balance of a student at `at`.
    pub fn available(&self, student: &str, at: DateTime<Utc>) -> Units {
        let b = derive_balances(self.student_entries(student));
        available_units(
            self.packages
                .get(student)
                .map(|v| v.as_slice())
                .unwrap_or(&[]),
            b.overdraft_units(),
            at,
        )
    }

    /// Charges `units` for a lesson, at most once net per (student, lesson).
    fn charge(
        &mut self,
        student: &str,
        lesson: &BookedLesson,
        units: Units,
        at: DateTime<Utc>,
    ) -> DeductionDecision {
        let entries: Vec<&Entry> = self.student_entries(student).collect();
        if net_lesson_units(entries.iter().copied(), &lesson.lesson_id) != 0 {
            return DeductionDecision::Nothing;
        }
        let nth = entries
            .iter()
            .filter(|e| {
                e.kind == EntryKind::Reversal
                    && e.lesson_id.as_deref() == Some(lesson.lesson_id.as_str())
            })
            .count() as u32;
        let overdraft = derive_balances(entries.iter().copied()).overdraft_units();
        let pkgs = self.packages.get(student).cloned().unwrap_or_default();
        let d = decide_deduction(
            &pkgs,
            &lesson.campus_id,
            at,
            units,
            overdraft,
            self.policy.overdraft,
        );
        let (package_id, amount) = match &d {
            DeductionDecision::FromPackage { package_id, units } => {
                let earned = pkgs
                    .iter()
                    .find(|p| &p.package_id == package_id)
                    .map_or(0, |p| p.charge_revenue(*units));
                (Some(package_id.clone()), -earned)
            }
            DeductionDecision::Overdraft { .. } => (None, 0),
            _ => return d,
        };
        self.append(Entry {
            student_id: student.into(),
            kind: EntryKind::Deduction,
            package_id,
            lesson_id: Some(lesson.lesson_id.clone()),
            units: -units,
            amount_cents: amount,
            idempotency_key: deduction_key(student, &lesson.lesson_id, nth),
        });
        d
    }

    fn raise(&mut self, a: AlertDraft) {
        self.alerts.entry(a.dedup_key.clone()).or_insert(a);
    }

    fn balance_alerts(&mut self, student: &str, at: DateTime<Utc>) {
        let purchases = self
            .student_entries(student)
            .filter(|e| e.kind == EntryKind::Purchase)
            .count() as u64;
        let avail = self.available(student, at);
        if let Some(a) = low_balance_alert(student, avail, purchases, &self.policy.alerts) {
            self.raise(a);
        }
    }

    /// Applies one check-in event. `event_key` identifies the event (replays are no-ops).
    pub fn check_in(
        &mut self,
        student: &str,
        at: DateTime<Utc>,
        event_key: &str,
    ) -> CheckInOutcome {
        if !self.seen_events.insert(event_key.to_string()) {
            return CheckInOutcome::DuplicateEvent;
        }
        let lessons = self.bookings.get(student).cloned().unwrap_or_default();
        let Some((lesson, status)) = match_checkin(&lessons, at) else {
            return CheckInOutcome::Unscheduled;
        };
        let k = (student.to_string(), lesson.lesson_id.clone());
        if let Some(s) = self.attendance.get(&k) {
            return CheckInOutcome::AlreadyRecorded {
                lesson_id: lesson.lesson_id.clone(),
                status: *s,
            };
        }
        self.attendance.insert(k, status);
        let d = self.charge(student, lesson, UNITS_PER_LESSON, at);
        if let DeductionDecision::Insufficient { reason, .. } = d {
            self.raise(zero_balance_alert(
                student,
                &lesson.class_id,
                &lesson.lesson_id,
                reason,
            ));
        }
        self.balance_alerts(student, at);
        CheckInOutcome::Recorded {
            lesson_id: lesson.lesson_id.clone(),
            class_id: lesson.class_id.clone(),
            status,
            deduction: d,
        }
    }

    /// Reverses every net deduction of a lesson (a correction); returns the units given back.
    pub fn reverse(&mut self, student: &str, lesson_id: &str) -> Units {
        let open: Vec<Entry> = self
            .student_entries(student)
            .filter(|e| e.kind == EntryKind::Deduction && e.lesson_id.as_deref() == Some(lesson_id))
            .filter(|e| !self.keys.contains(&reversal_key(&e.idempotency_key)))
            .cloned()
            .collect();
        let mut back = 0;
        for e in open {
            back -= e.units;
            self.append(Entry {
                kind: EntryKind::Reversal,
                units: -e.units,
                amount_cents: -e.amount_cents,
                idempotency_key: reversal_key(&e.idempotency_key),
                ..e
            });
        }
        back
    }

    /// Finalises every booked lesson due at `now`: absences and streak alerts.
    pub fn finalize(&mut self, now: DateTime<Utc>) {
        let mut due: Vec<(String, BookedLesson)> = self
            .bookings
            .iter()
            .flat_map(|(s, ls)| ls.iter().map(move |l| (s.clone(), l.clone())))
            .filter(|(_, l)| l.finalize_at() <= now)
            .collect();
        due.sort_by(|a, b| {
            a.1.start
                .cmp(&b.1.start)
                .then(a.1.lesson_id.cmp(&b.1.lesson_id))
                .then(a.0.cmp(&b.0))
        });
        for (student, lesson) in due {
            let k = (student.clone(), lesson.lesson_id.clone());
            if self.attendance.contains_key(&k) {
                continue;
            }
            let policy = self
                .class_policy
                .get(&lesson.class_id)
                .copied()
                .unwrap_or_default();
            let leave = self.leaves.get(&k).copied();
            let Some(out) = finalize_absence(&lesson, &policy.absence, leave.as_ref(), now) else {
                continue;
            };
            self.attendance.insert(k, out.status);
            let d = self.charge(&student, &lesson, out.charge.units(), lesson.start);
            if let DeductionDecision::Insufficient { reason, .. } = d {
                self.raise(zero_balance_alert(
                    &student,
                    &lesson.class_id,
                    &lesson.lesson_id,
                    reason,
                ));
            }
            let history = self.class_history(&student, &lesson.class_id);
            for s in absence_streaks(&history, self.policy.alerts.absence_streak) {
                self.raise(streak_alert(&student, &lesson.class_id, &s));
            }
            self.balance_alerts(&student, now);
        }
    }

    /// Chronological recorded attendance of a student in a class.
    pub fn class_history(&self, student: &str, class: &str) -> Vec<(String, AttendanceStatus)> {
        let mut ls: Vec<&BookedLesson> = self
            .bookings
            .get(student)
            .map(|v| v.iter().filter(|l| l.class_id == class).collect())
            .unwrap_or_default();
        ls.sort_by(|a, b| a.start.cmp(&b.start).then(a.lesson_id.cmp(&b.lesson_id)));
        ls.into_iter()
            .filter_map(|l| {
                self.attendance
                    .get(&(student.to_string(), l.lesson_id.clone()))
                    .map(|s| (l.lesson_id.clone(), *s))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap()
    }

    fn lesson(id: &str, class: &str, start_min: i64, len_min: i64) -> BookedLesson {
        BookedLesson {
            lesson_id: id.into(),
            class_id: class.into(),
            campus_id: "north".into(),
            start: t0() + Duration::minutes(start_min),
            end: t0() + Duration::minutes(start_min + len_min),
            timing: LessonTiming::default(),
        }
    }

    fn package(id: &str, lessons: i64, campus: Option<&str>, expires_days: i64) -> PackageState {
        PackageState {
            package_id: id.into(),
            campus_id: campus.map(Into::into),
            bought_at: t0() - Duration::days(30),
            expires_at: t0() + Duration::days(expires_days),
            lessons_bought: lessons,
            unit_price_cents: 2500,
            price_paid_cents: 2500 * lessons,
            gift_lessons: 0,
            balance_units: lessons * UNITS_PER_LESSON,
            used_units: 0,
        }
    }

    #[test]
    fn checkin_window_and_lateness() {
        let l = lesson("l1", "c", 600, 60); // 10:00-11:00
        let at = |m: i64| t0() + Duration::minutes(m);
        assert_eq!(classify_checkin(&l, at(584)), None);
        assert_eq!(
            classify_checkin(&l, at(585)),
            Some(AttendanceStatus::Present)
        );
        assert_eq!(
            classify_checkin(&l, at(605)),
            Some(AttendanceStatus::Present)
        );
        assert_eq!(
            classify_checkin(&l, at(605) + Duration::seconds(1)),
            Some(AttendanceStatus::Late)
        );
        assert_eq!(classify_checkin(&l, at(660)), Some(AttendanceStatus::Late));
        assert_eq!(classify_checkin(&l, at(660) + Duration::seconds(1)), None);
    }

    #[test]
    fn back_to_back_lessons_pick_closest_start() {
        let a = lesson("a", "c", 540, 60); // 9-10
        let b = lesson("b", "c", 600, 60); // 10-11
        let ls = vec![b.clone(), a.clone()];
        let (m, s) = match_checkin(&ls, t0() + Duration::minutes(595)).unwrap();
        assert_eq!((m.lesson_id.as_str(), s), ("b", AttendanceStatus::Present));
        let (m, s) = match_checkin(&ls, t0() + Duration::minutes(560)).unwrap();
        assert_eq!((m.lesson_id.as_str(), s), ("a", AttendanceStatus::Late));
    }

    #[test]
    fn package_choice_expiring_first_campus_and_expiry() {
        let at = t0();
        let pkgs = vec![
            package("wide-late", 10, None, 90),
            package("south", 10, Some("south"), 5),
            package("north-soon", 10, Some("north"), 10),
            package("expired", 10, Some("north"), -1),
            PackageState {
                balance_units: 0,
                ..package("empty", 10, None, 1)
            },
        ];
        assert_eq!(
            choose_package(&pkgs, "north", at, 100).unwrap().package_id,
            "north-soon"
        );
        assert_eq!(
            choose_package(&pkgs, "south", at, 100).unwrap().package_id,
            "south"
        );
        assert_eq!(
            choose_package(&pkgs, "east", at, 100).unwrap().package_id,
            "wide-late"
        );
        let only_expired = vec![package("expired", 10, None, -1)];
        assert_eq!(
            decide_deduction(&only_expired, "north", at, 100, 0, OverdraftPolicy::Deny),
            DeductionDecision::Insufficient {
                reason: InsufficientReason::Expired,
                units: 100
            }
        );
        assert_eq!(
            decide_deduction(&[], "north", at, 100, 0, OverdraftPolicy::Deny),
            DeductionDecision::Insufficient {
                reason: InsufficientReason::NoPackage,
                units: 100
            }
        );
        let allow = OverdraftPolicy::Allow { max_lessons: 1 };
        assert_eq!(
            decide_deduction(&[], "north", at, 100, 0, allow),
            DeductionDecision::Overdraft { units: 100 }
        );
        assert!(matches!(
            decide_deduction(&[], "north", at, 100, 100, allow),
            DeductionDecision::Insufficient {
                reason: InsufficientReason::NoPackage,
                ..
            }
        ));
    }

    #[test]
    fn absence_policy_with_notice() {
        let l = lesson("l", "c", 24 * 60 * 3, 60);
        let p = AbsencePolicy::default();
        assert_eq!(finalize_absence(&l, &p, None, l.end), None);
        let now = l.finalize_at();
        assert_eq!(
            finalize_absence(&l, &p, None, now).unwrap(),
            AbsenceOutcome {
                status: AttendanceStatus::Absent,
                charge: Charge::Full
            }
        );
        let early = Leave {
            approved: true,
            requested_at: l.start - Duration::hours(48),
        };
        assert_eq!(
            finalize_absence(&l, &p, Some(&early), now).unwrap().charge,
            Charge::Free
        );
        let late = Leave {
            approved: true,
            requested_at: l.start - Duration::hours(2),
        };
        let o = finalize_absence(&l, &p, Some(&late), now).unwrap();
        assert_eq!(
            (o.status, o.charge),
            (AttendanceStatus::Excused, Charge::Half)
        );
        let refused = Leave {
            approved: false,
            ..early
        };
        assert_eq!(
            finalize_absence(&l, &p, Some(&refused), now)
                .unwrap()
                .status,
            AttendanceStatus::Absent
        );
    }

    #[test]
    fn refund_rule_cases() {
        let r = RefundRule {
            keep_before_first_pct: 10,
            no_refund_after_consumed_pct: 50,
            fee_cents: 500,
        }
        .to_policy();
        assert_eq!(r.check(), Ok(()));
        // 10 lessons at 25.00 paid, nothing used: keep 10 % of 250.00, fee 5.00
        let p = package("p", 10, None, 30);
        let q = quote_refund(&r, &p);
        assert_eq!(
            (q.rule, q.refund_cents, q.units, q.kept_cents, q.fee_cents),
            (RefundCase::BeforeFirstLesson, 22_000, 1000, 2_500, 500)
        );
        let used = |u: Units| PackageState {
            balance_units: 1000 - u,
            used_units: u,
            ..p.clone()
        };
        // 3 used: 175.00 unearned, keep 17.50, fee 5.00
        let q = quote_refund(&r, &used(300));
        assert_eq!(
            (q.rule, q.refund_cents, q.units, q.unearned_cents),
            (RefundCase::Remaining, 17_500 - 1_750 - 500, 700, 17_500)
        );
        // just under half used: still the second tier; half or more: nothing
        assert_eq!(quote_refund(&r, &used(490)).rule, RefundCase::Remaining);
        let q = quote_refund(&r, &used(500));
        assert_eq!(
            (q.rule, q.eligible, q.refund_cents),
            (RefundCase::TooMuchConsumed, false, 0)
        );
        // nothing left
        assert_eq!(quote_refund(&r, &used(1000)).rule, RefundCase::NothingLeft);
    }

    /// A discounted package with gifts: each lesson earns the paid price, gifts last and free;
    /// the refund is on what was paid, gifts removed and never refunded.
    #[test]
    fn discounted_package_with_gifts_earns_and_refunds_the_paid_price() {
        // 10 paid lessons listed at 300.00 each, sold for 2 400.00 (20 % off), 2 gift lessons
        let mut b = Book::default();
        b.purchase(
            "s",
            PackageState {
                unit_price_cents: 30_000,
                price_paid_cents: 240_000,
                gift_lessons: 2,
                ..package("p", 10, None, 90)
            },
        );
        assert_eq!(b.packages["s"][0].balance_units, 1200);
        let l = lesson("l1", "c", 600, 60);
        b.bookings.insert("s".into(), vec![l.clone()]);
        b.check_in("s", l.start, "e1");
        let d = b.entries.last().unwrap();
        assert_eq!((d.units, d.amount_cents), (-100, -24_000));
        assert_eq!(b.packages["s"][0].used_units, 100);
        // reversal gives back exactly what was earned
        b.reverse("s", "l1");
        assert_eq!(b.entries.last().unwrap().amount_cents, 24_000);
        assert_eq!(b.packages["s"][0].used_units, 0);
        // 11 lessons used: 10 paid (all earned) + 1 gift (nothing); no refund is left
        let p = PackageState {
            balance_units: 100,
            used_units: 1100,
            ..b.packages["s"][0].clone()
        };
        assert_eq!(p.money().earned_through(1100), 240_000);
        assert_eq!(p.charge_revenue(100), 0);
        let q = quote_refund(&RefundPolicy::default(), &p);
        assert_eq!((q.eligible, q.refund_cents), (false, 0));
        // 2 used: 1 920.00 unearned, keep 10 %: 1 728.00 back, both gifts removed unrefunded
        let p = PackageState {
            balance_units: 1000,
            used_units: 200,
            ..p
        };
        let q = quote_refund(&RefundPolicy::default(), &p);
        assert_eq!(
            (q.refund_cents, q.units, q.gift_units_removed),
            (172_800, 1000, 200)
        );
    }

    #[test]
    fn fmt_units_is_exact() {
        assert_eq!(fmt_units(250), "2.5");
        assert_eq!(fmt_units(200), "2");
        assert_eq!(fmt_units(-50), "-0.5");
        assert_eq!(fmt_units(5), "0.05");
    }

    #[test]
    fn streaks_excused_skip_attended_break() {
        use AttendanceStatus::*;
        let h: Vec<(String, AttendanceStatus)> = [
            Absent, Excused, Absent, Absent, Present, Absent, Absent, Late, Absent, Absent, Absent,
            Absent,
        ]
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("l{i}"), *s))
        .collect();
        let s = absence_streaks(&h, 3);
        assert_eq!(
            s,
            vec![
                Streak {
                    first_lesson_id: "l0".into(),
                    len: 3
                },
                Streak {
                    first_lesson_id: "l8".into(),
                    len: 4
                }
            ]
        );
    }

    fn arb_status() -> impl Strategy<Value = AttendanceStatus> {
        prop::sample::select(AttendanceStatus::ALL.to_vec())
    }

    /// A small world: 3 students, 2 classes, lessons every day at fixed times, a few packages.
    fn world(n_lessons: usize, lessons_bought: i64, overdraft: bool) -> Book {
        let mut b = Book::default();
        if overdraft {
            b.policy.overdraft = OverdraftPolicy::Allow { max_lessons: 2 };
        }
        for s in ["s1", "s2", "s3"] {
            let mut ls = Vec::new();
            for i in 0..n_lessons {
                let class = if i % 2 == 0 { "math" } else { "art" };
                // day i/2, at 16:00 (math) or 17:00 (art), back to back
                ls.push(lesson(
                    &format!("L{i}"),
                    class,
                    (i as i64 / 2) * 1440 + 960 + (i as i64 % 2) * 60,
                    60,
                ));
            }
            b.bookings.insert(s.into(), ls);
            b.purchase(
                s,
                PackageState {
                    package_id: format!("{s}-a"),
                    ..package("", lessons_bought, Some("north"), 3)
                },
            );
            b.purchase(
                s,
                PackageState {
                    package_id: format!("{s}-b"),
                    ..package("", lessons_bought, None, 60)
                },
            );
        }
        b
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Whatever the order and duplication of check-in events (the clock being each event's
        /// time), each (student, lesson) is charged at most one lesson, and the resulting ledger
        /// is the same set of (student, lesson, units) as processing each event once in order.
        #[test]
        fn at_most_one_deduction_per_student_lesson(
            events in prop::collection::vec((0usize..3, 0i64..(6 * 1440), 0u8..3), 0..60),
            seed in any::<u64>(),
            lessons_bought in 0i64..10,
            overdraft in any::<bool>(),
        ) {
            let students = ["s1", "s2", "s3"];
            let evs: Vec<(String, DateTime<Utc>, String)> = events.iter().enumerate().map(|(i, (s, m, _))| {
                (students[*s].to_string(), t0() + Duration::minutes(*m), format!("e{i}"))
            }).collect();
            let mut once = world(12, lessons_bought, overdraft);
            for (s, at, k) in &evs { once.check_in(s, *at, k); }
            // every event 1..=3 times, shuffled deterministically by the seed
            let mut dup: Vec<&(String, DateTime<Utc>, String)> = Vec::new();
            for (i, e) in evs.iter().enumerate() {
                for _ in 0..=(events[i].2) { dup.push(e); }
            }
            let mut x = seed | 1;
            for i in (1..dup.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                dup.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut shuffled = world(12, lessons_bought, overdraft);
            for (s, at, k) in &dup { shuffled.check_in(s, *at, k); }
            for book in [&once, &shuffled] {
                let mut per: BTreeMap<(String, String), Units> = BTreeMap::new();
                for e in &book.entries {
                    if let Some(l) = &e.lesson_id {
                        *per.entry((e.student_id.clone(), l.clone())).or_default() += e.units;
                        prop_assert_eq!(e.kind, EntryKind::Deduction);
                    }
                }
                for u in per.values() {
                    prop_assert!(*u == -UNITS_PER_LESSON, "a lesson was charged {} units", u);
                }
                // every recorded attendance (check-ins only here) is charged unless unpaid
                let keys: BTreeSet<&String> = book.entries.iter().map(|e| &e.idempotency_key).collect();
                prop_assert_eq!(keys.len(), book.entries.len());
                // balances never negative on packages
                for ps in book.packages.values() { for p in ps { prop_assert!(p.balance_units >= 0); } }
            }
            let proj = |b: &Book| -> BTreeSet<(String, String, Option<String>, Units)> {
                b.entries.iter().filter_map(|e| e.lesson_id.clone().map(|l| (e.student_id.clone(), l, e.package_id.clone(), e.units))).collect()
            };
            prop_assert_eq!(once.attendance.keys().collect::<Vec<_>>(), shuffled.attendance.keys().collect::<Vec<_>>());
            if lessons_bought >= 6 {
                // enough balance (package a covers the 6 lessons before it expires, b the rest):
                // exactly the same lessons are charged to the same packages
                prop_assert_eq!(proj(&once), proj(&shuffled));
            }
        }

        /// Balance (sum of all entries) moves by at most one lesson per (student, lesson) over a
        /// whole run of check-ins, finalisations, reversals and re-deductions.
        #[test]
        fn balance_moves_at_most_one_lesson_per_student_lesson(
            ops in prop::collection::vec((0u8..4, 0usize..3, 0i64..(6 * 1440)), 0..80),
            lessons_bought in 0i64..8,
        ) {
            let students = ["s1", "s2", "s3"];
            let mut b = world(12, lessons_bought, false);
            let start: BTreeMap<&str, Units> = students.iter().map(|s| (*s, b.entries.iter().filter(|e| e.student_id == *s).map(|e| e.units).sum())).collect();
            let mut now = t0();
            for (i, (op, s, m)) in ops.iter().enumerate() {
                let at = t0() + Duration::minutes(*m);
                match op {
                    0 | 1 => { b.check_in(students[*s], at, &format!("e{i}")); }
                    2 => { now = now.max(at); b.finalize(now); }
                    _ => {
                        let l = format!("L{}", m % 12);
                        b.reverse(students[*s], &l);
                        // re-deduct through a fresh finalisation-style charge
                        let lesson = b.bookings[students[*s]].iter().find(|x| x.lesson_id == l).cloned().unwrap();
                        if b.attendance.contains_key(&(students[*s].to_string(), l.clone())) {
                            b.charge(students[*s], &lesson, UNITS_PER_LESSON, lesson.start);
                        }
                    }
                }
                for st in students {
                    let mut per: BTreeMap<String, Units> = BTreeMap::new();
                    for e in b.entries.iter().filter(|e| e.student_id == st) {
                        if let Some(l) = &e.lesson_id { *per.entry(l.clone()).or_default() += e.units; }
                    }
                    for (l, u) in &per { prop_assert!((-UNITS_PER_LESSON..=0).contains(u), "{} {} net {}", st, l, u); }
                    let total: Units = b.entries.iter().filter(|e| e.student_id == st).map(|e| e.units).sum();
                    prop_assert!(start[st] - total <= per.len() as i64 * UNITS_PER_LESSON);
                    prop_assert_eq!(start[st] - total, -per.values().sum::<Units>());
                }
            }
        }

        /// Raising streak alerts after every finalisation (the clock advancing lesson by lesson)
        /// yields exactly one alert per streak of the final history.
        #[test]
        fn one_alert_per_streak(statuses in prop::collection::vec(arb_status(), 0..40), n in 1u32..5) {
            let history: Vec<(String, AttendanceStatus)> = statuses.iter().enumerate().map(|(i, s)| (format!("l{i:03}"), *s)).collect();
            let mut raised: BTreeSet<String> = BTreeSet::new();
            for k in 0..=history.len() {
                for s in absence_streaks(&history[..k], n) {
                    raised.insert(streak_alert("s", "c", &s).dedup_key);
                }
            }
            // expected: maximal runs of absences (ignoring excused) of length >= n
            let mut runs = 0; let mut cur = 0u32;
            for s in &statuses {
                match s { AttendanceStatus::Absent => cur += 1, AttendanceStatus::Excused => {}, _ => { if cur >= n { runs += 1; } cur = 0; } }
            }
            if cur >= n { runs += 1; }
            prop_assert_eq!(raised.len(), runs);
        }

        /// Finalising with the clock at any instants, in any order of calls, gives the same
        /// attendance as one finalisation at the latest instant, and only lessons due by then.
        #[test]
        fn finalisation_depends_only_on_latest_clock(mins in prop::collection::vec(0i64..(7 * 1440), 1..6)) {
            let mut a = world(12, 20, false);
            let mut sorted = mins.clone(); sorted.sort();
            for m in &sorted { a.finalize(t0() + Duration::minutes(*m)); }
            let mut b = world(12, 20, false);
            let last = *sorted.last().unwrap();
            b.finalize(t0() + Duration::minutes(last));
            prop_assert_eq!(&a.attendance, &b.attendance);
            prop_assert_eq!(&a.entries, &b.entries);
            let now = t0() + Duration::minutes(last);
            for (s, l) in a.attendance.keys() {
                let lesson = a.bookings[s].iter().find(|x| &x.lesson_id == l).unwrap();
                prop_assert!(lesson.finalize_at() <= now);
            }
        }

        /// Refunds never exceed what was paid, and are zero once the threshold is consumed.
        #[test]
        fn refund_bounded(lessons in 1i64..40, gifts in 0i64..5, used in 0i64..4000, price in 0i64..100_000, keep in 0u32..100, thr in 1u32..100, fee in 0i64..5000) {
            let used = used.min((lessons + gifts) * 100);
            let p = PackageState { balance_units: (lessons + gifts) * 100 - used, used_units: used, gift_lessons: gifts, unit_price_cents: price, price_paid_cents: price * lessons, ..package("p", lessons, None, 10) };
            let r = RefundRule { keep_before_first_pct: keep, no_refund_after_consumed_pct: thr, fee_cents: fee }.to_policy();
            prop_assert!(r.check().is_ok());
            let q = quote_refund(&r, &p);
            prop_assert!(q.refund_cents >= 0 && q.refund_cents <= p.price_paid_cents);
            prop_assert!(q.refund_cents <= p.money().unearned(used));
            if used.min(lessons * 100) * 100 >= lessons * 100 * i64::from(thr) { prop_assert_eq!(q.refund_cents, 0); }
        }

        /// A check-in is matched to a lesson iff it falls in some window; lateness is monotone.
        #[test]
        fn matching_respects_windows(m in 0i64..(6 * 1440)) {
            let b = world(12, 1, false);
            let ls = &b.bookings["s1"];
            let at = t0() + Duration::minutes(m);
            let any_window = ls.iter().any(|l| at >= l.window_start() && at <= l.end);
            let got = match_checkin(ls, at);
            prop_assert_eq!(got.is_some(), any_window);
            if let Some((l, s)) = got {
                prop_assert_eq!(s == AttendanceStatus::Late, at > l.start + Duration::minutes(l.timing.late_grace_minutes));
            }
        }
    }
}
