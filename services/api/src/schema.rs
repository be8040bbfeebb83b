//! OpenAPI schemas of the ledger's and domain's types as the API sends and takes them.
//!
//! Those crates know nothing of the web (no utoipa there): a response struct of this crate that
//! holds one of their values names its schema here with `#[schema(value_type = …)]`, and a
//! request body the handler reads as one of their types (`NewClass`, `NewLesson`) is documented
//! by its mirror here. Each mirror has the fields, names and serde shape of the type it
//! describes; the API tests validate every response against the document, so a mirror that
//! drifts from its type fails them. Only their schemas are used: nothing constructs them.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A staff role.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Manager,
    Teacher,
    FrontDesk,
    Viewer,
}

/// The campuses an account reaches: `"all"` or `{"only": [campus ids]}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampusScope {
    All,
    Only(Vec<String>),
}

/// A staff account (no password hash).
#[derive(Serialize, ToSchema)]
pub struct StaffAccount {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub campuses: CampusScope,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// A staff account as created.
#[derive(Serialize, ToSchema)]
pub struct NewStaff {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub campuses: CampusScope,
}

/// An API token without its secret.
#[derive(Serialize, ToSchema)]
pub struct ApiTokenView {
    pub id: String,
    pub username: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub revoked: bool,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One row of the audit log.
#[derive(Serialize, ToSchema)]
pub struct AuditRow {
    pub seq: i64,
    pub actor: String,
    pub actor_role: Option<String>,
    pub actor_ip: Option<String>,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub at: DateTime<Utc>,
    /// The record before the change (any JSON), null for a creation.
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
}

/// A student.
#[derive(Serialize, ToSchema)]
pub struct StudentView {
    pub id: String,
    pub name: String,
    pub home_campus_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Home campus and the campuses of the classes the student is enrolled in.
    pub campuses: Vec<String>,
}

/// A student as registered.
#[derive(Serialize, ToSchema)]
pub struct NewStudent {
    pub id: String,
    pub name: String,
    pub home_campus_id: Option<String>,
}

/// A guardian of a student.
#[derive(Serialize, ToSchema)]
pub struct GuardianView {
    pub id: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub language: String,
    pub notify_prefs: String,
}

/// A guardian as added.
#[derive(Serialize, ToSchema)]
pub struct NewGuardian {
    pub id: String,
    pub student_id: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub language: String,
    pub notify_prefs: String,
}

/// A recorded consent decision.
#[derive(Serialize, ToSchema)]
pub struct ConsentView {
    pub kind: String,
    pub granted: bool,
    pub given_by: String,
    pub at: DateTime<Utc>,
}

/// One package of a balance: its state (units: hundredths of a lesson) and balance text.
#[derive(Serialize, ToSchema)]
pub struct PackageView {
    pub package_id: String,
    pub campus_id: Option<String>,
    pub bought_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Paid lessons.
    pub lessons_bought: i64,
    /// The list price per lesson (informational).
    pub unit_price_cents: i64,
    /// What the paid lessons cost after any discount: the base of revenue and refunds.
    pub price_paid_cents: i64,
    /// Gift lessons: used last, never revenue, never refunded.
    pub gift_lessons: i64,
    pub balance_units: i64,
    /// Units used by lesson charges, net of reversals.
    pub used_units: i64,
    pub balance: String,
    pub expired: bool,
}

/// A student's balance (units: hundredths of a lesson) and packages.
#[derive(Serialize, ToSchema)]
pub struct BalanceView {
    pub student_id: String,
    pub at: DateTime<Utc>,
    pub available_units: i64,
    pub available: String,
    pub overdraft_units: i64,
    pub packages: Vec<PackageView>,
}

/// Kind of a ledger entry.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Purchase,
    Deduction,
    Reversal,
    Refund,
    Adjustment,
}

/// An append-only ledger entry.
#[derive(Serialize, ToSchema)]
pub struct Entry {
    pub student_id: String,
    pub kind: EntryKind,
    pub package_id: Option<String>,
    pub lesson_id: Option<String>,
    pub units: i64,
    pub amount_cents: i64,
    pub idempotency_key: String,
}

/// A stored ledger entry with its sequence number, time, actor and note.
#[derive(Serialize, ToSchema)]
pub struct StoredEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub note: Option<String>,
    pub student_id: String,
    pub kind: EntryKind,
    pub package_id: Option<String>,
    pub lesson_id: Option<String>,
    pub units: i64,
    pub amount_cents: i64,
    pub idempotency_key: String,
}

/// A package as bought.
#[derive(Serialize, ToSchema)]
pub struct NewPackage {
    pub id: String,
    pub student_id: String,
    pub campus_id: Option<String>,
    pub lessons: i64,
    pub unit_price_cents: i64,
    pub price_paid_cents: Option<i64>,
    pub bought_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// One row of the refund table: while at most `max_used_pct` % of the paid lessons are used,
/// the school keeps `keep_pct` % of what was paid and not yet earned.
#[derive(Serialize, ToSchema)]
pub struct RefundTier {
    pub max_used_pct: u32,
    pub keep_pct: u32,
}

/// A school's refund policy: tiers by share of paid lessons used (past the last: no refund)
/// and a handling fee on every refund.
#[derive(Serialize, ToSchema)]
pub struct RefundPolicy {
    pub tiers: Vec<RefundTier>,
    pub fee_cents: i64,
}

/// The school's refund policy and who last changed it (`null`: never edited).
#[derive(Serialize, ToSchema)]
pub struct RefundPolicyView {
    pub policy: RefundPolicy,
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<String>,
}

/// Which case of the refund policy applied.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundCase {
    BeforeFirstLesson,
    TooMuchConsumed,
    Remaining,
    NothingLeft,
}

/// The refund policy applied to a package: on what was paid and not yet earned.
#[derive(Serialize, ToSchema)]
pub struct RefundQuote {
    pub eligible: bool,
    pub refund_cents: i64,
    /// Units the refund removes (everything left, gifts included).
    pub units: i64,
    pub rule: RefundCase,
    pub paid_cents: i64,
    pub used_paid_units: i64,
    pub paid_units: i64,
    pub unearned_cents: i64,
    /// Index of the tier applied; `null`: past the last tier.
    pub tier: Option<u32>,
    pub kept_cents: i64,
    pub fee_cents: i64,
    pub gift_units_removed: i64,
}

/// How a payment was made or a refund paid out.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    Cash,
    BankCard,
    WechatPay,
    Alipay,
    BankTransfer,
    Other,
}

/// Life cycle of a refund request.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    Pending,
    Approved,
    Rejected,
}

/// A refund request: asked by one staff member, decided by another.
#[derive(Serialize, ToSchema)]
pub struct RefundRequestView {
    pub id: i64,
    pub student_id: String,
    pub package_id: String,
    pub reason: String,
    pub method: PaymentMethod,
    pub state: RefundState,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub quote: RefundQuote,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_note: Option<String>,
    pub refund_cents: Option<i64>,
}

/// A package line as sold.
#[derive(Serialize, ToSchema)]
pub struct OrderLineView {
    pub package_id: String,
    pub campus_id: Option<String>,
    pub lessons: i64,
    pub gift_lessons: i64,
    pub list_price_cents: i64,
    pub discount_cents: i64,
    pub discount_reason: Option<String>,
    pub due_cents: i64,
    pub expires_at: DateTime<Utc>,
}

/// A payment recorded.
#[derive(Serialize, ToSchema)]
pub struct PaymentView {
    pub id: i64,
    pub order_id: String,
    pub student_id: String,
    pub campus_id: Option<String>,
    pub amount_cents: i64,
    pub method: PaymentMethod,
    pub reference: Option<String>,
    pub received_at: DateTime<Utc>,
    pub received_by: String,
}

/// A planned instalment (local due date) and whether payments cover it.
#[derive(Serialize, ToSchema)]
pub struct InstalmentView {
    pub n: i64,
    pub due_on: chrono::NaiveDate,
    pub amount_cents: i64,
    pub covered: bool,
}

/// An order: its package lines, payments and instalment plan.
#[derive(Serialize, ToSchema)]
pub struct OrderView {
    pub id: String,
    pub student_id: String,
    pub campus_id: Option<String>,
    pub salesperson: Option<String>,
    pub note: Option<String>,
    pub list_cents: i64,
    pub discount_cents: i64,
    pub due_cents: i64,
    pub paid_cents: i64,
    pub outstanding_cents: i64,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub lines: Vec<OrderLineView>,
    pub payments: Vec<PaymentView>,
    pub instalments: Vec<InstalmentView>,
}

/// How much an absence costs.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Charge {
    Free,
    Half,
    Full,
}

/// Check-in and finalisation windows of a class, in minutes.
#[derive(Serialize, ToSchema)]
pub struct LessonTiming {
    pub early_minutes: i64,
    pub late_grace_minutes: i64,
    pub finalize_grace_minutes: i64,
}

/// Whether and how much an absence deducts.
#[derive(Serialize, ToSchema)]
pub struct AbsencePolicy {
    pub unexcused: Charge,
    pub excused: Charge,
    pub short_notice: Charge,
    pub notice_hours: i64,
}

/// Per-class rules.
#[derive(Serialize, ToSchema)]
pub struct ClassPolicy {
    pub timing: LessonTiming,
    pub absence: AbsencePolicy,
}

/// A class as created (also the request body of `createClass`).
#[derive(Serialize, ToSchema)]
pub struct NewClass {
    pub id: String,
    pub course: String,
    pub name: String,
    pub campus_id: String,
    pub teacher: String,
    pub policy: ClassPolicy,
    /// The most students enrolled (make-ups count toward a lesson's); absent: no limit. A
    /// 1-on-1 class holds 1.
    pub capacity: Option<i64>,
    /// The class's usual room (a room of its campus).
    pub room_id: Option<String>,
    /// A group class or 1-on-1 slots (a slot is one of its lessons, e.g. booked as a make-up).
    pub kind: ClassKind,
}

/// What a class is.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClassKind {
    Group,
    OneOnOne,
}

/// A class with its enrolled students.
#[derive(Serialize, ToSchema)]
pub struct ClassView {
    pub id: String,
    pub course: String,
    pub name: String,
    pub campus_id: String,
    pub teacher: String,
    pub students: Vec<String>,
    /// Absent: no limit.
    pub capacity: Option<i64>,
    pub room_id: Option<String>,
    /// `group` or `one_on_one`.
    pub kind: String,
    pub policy: ClassPolicy,
}

/// A lesson as added (also the request body of `addLesson`).
#[derive(Serialize, ToSchema)]
pub struct NewLesson {
    pub id: String,
    pub class_id: String,
    pub room_id: Option<String>,
    pub teacher: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A lesson of the timetable.
#[derive(Serialize, ToSchema)]
pub struct LessonView {
    pub id: String,
    pub class_id: String,
    pub class_name: String,
    pub campus_id: String,
    pub room_id: Option<String>,
    pub teacher: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub finalized: bool,
    /// The weekly series the lesson belongs to.
    pub series_id: Option<String>,
}

/// A weekly series of a class.
#[derive(Serialize, ToSchema)]
pub struct SeriesView {
    pub id: String,
    pub class_id: String,
    /// `mon` … `sun`.
    pub weekday: String,
    /// `HH:MM`, school time.
    pub start_time: String,
    pub minutes: i64,
    /// School-local days, both included.
    pub first_day: String,
    pub last_day: String,
    pub room_id: Option<String>,
    pub teacher: Option<String>,
    /// Its lessons still on the timetable.
    pub lessons: i64,
}

/// A school holiday (a school-local day without lessons).
#[derive(Serialize, ToSchema)]
pub struct HolidayView {
    pub day: String,
    pub name: String,
    pub created_by: String,
}

/// A cancelled lesson as kept.
#[derive(Serialize, ToSchema)]
pub struct CancelledLessonView {
    pub id: String,
    pub class_id: String,
    pub campus_id: String,
    pub teacher: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: String,
    pub cancelled_by: String,
    pub cancelled_at: DateTime<Utc>,
    /// Students who were booked.
    pub students: Vec<String>,
}

/// One booked student of a lesson on the board.
#[derive(Serialize, ToSchema)]
pub struct BoardStudent {
    pub student_id: String,
    pub name: String,
    /// `present`, `late`, `absent`, `excused`, `left_early` or `not_yet`.
    pub status: String,
    pub source: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

/// A lesson on the board with its booked students and counts per status.
#[derive(Serialize, ToSchema)]
pub struct BoardLesson {
    pub id: String,
    pub class_id: String,
    pub class_name: String,
    pub campus_id: String,
    pub room_id: Option<String>,
    pub teacher: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub finalized: bool,
    pub students: Vec<BoardStudent>,
    pub counts: BTreeMap<String, u64>,
}

/// Attendance of a booked student at one lesson.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttendanceStatus {
    Present,
    Late,
    Absent,
    Excused,
    LeftEarly,
}

/// Who or what reported the attendance.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttendanceSource {
    Face,
    Review,
    Manual,
    Qr,
}

/// Why nothing could be deducted.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InsufficientReason {
    NoPackage,
    Expired,
    Exhausted,
}

/// What a check-in's charge did to the ledger (`decision` names the case).
#[derive(Serialize, ToSchema)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum DeductionDecision {
    Nothing,
    FromPackage {
        package_id: String,
        units: i64,
    },
    Overdraft {
        units: i64,
    },
    Insufficient {
        reason: InsufficientReason,
        units: i64,
    },
}

/// What a check-in did (`outcome` names the case) and the balance after it.
#[derive(Serialize, ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CheckInResult {
    Recorded {
        student_id: String,
        at: DateTime<Utc>,
        source: AttendanceSource,
        camera_id: Option<String>,
        lesson_id: String,
        class_id: String,
        status: AttendanceStatus,
        deduction: DeductionDecision,
        balance_units: i64,
        balance: String,
        alerts: Vec<String>,
    },
    AlreadyRecorded {
        student_id: String,
        at: DateTime<Utc>,
        source: AttendanceSource,
        camera_id: Option<String>,
        lesson_id: String,
        status: AttendanceStatus,
        balance_units: i64,
        balance: String,
        alerts: Vec<String>,
    },
    Unscheduled {
        student_id: String,
        at: DateTime<Utc>,
        source: AttendanceSource,
        camera_id: Option<String>,
        balance_units: i64,
        balance: String,
        alerts: Vec<String>,
    },
    DuplicateEvent {
        student_id: String,
        at: DateTime<Utc>,
        source: AttendanceSource,
        camera_id: Option<String>,
        balance_units: i64,
        balance: String,
        alerts: Vec<String>,
    },
}

/// State of a review item.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    Pending,
    Approved,
    Rejected,
    Reassigned,
}

/// A reviewer's decision.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    Approve,
    Reject,
    Reassign,
}

/// A candidate student of a review item and the recognizer's score.
#[derive(Serialize, ToSchema)]
pub struct ReviewCandidate {
    pub student_id: String,
    pub score: f32,
}

/// An uncertain recognition waiting for (or after) a reviewer's decision.
#[derive(Serialize, ToSchema)]
pub struct ReviewItem {
    pub id: i64,
    pub campus_id: String,
    pub camera_id: Option<String>,
    pub track_key: String,
    pub created_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    pub reason: String,
    pub crop_path: Option<String>,
    pub candidates: Vec<ReviewCandidate>,
    pub state: ReviewState,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_student: Option<String>,
}

/// A decided review item and the check-in it made (approve, reassign).
#[derive(Serialize, ToSchema)]
pub struct ReviewOutcome {
    pub item: ReviewItem,
    pub check_in: Option<CheckInResult>,
}

/// Kind of an alert.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    AbsenceStreak,
    LowBalance,
    ExpiringPackage,
    ZeroBalanceCheckin,
    CameraOffline,
    CheckInFailed,
    ManyMakeups,
}

/// Life cycle of an alert.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Open,
    Acknowledged,
    Resolved,
}

/// An alert.
#[derive(Serialize, ToSchema)]
pub struct AlertView {
    pub id: i64,
    pub kind: AlertKind,
    pub state: AlertState,
    pub dedup_key: String,
    pub student_id: String,
    pub class_id: Option<String>,
    pub package_id: Option<String>,
    pub message: String,
    pub data: AlertData,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an alert is about, as data (each kind fills its own fields; absent: not known).
#[derive(Serialize, ToSchema)]
pub struct AlertData {
    /// Lessons missed in a row (absence streak).
    pub missed: Option<u32>,
    /// The lesson concerned (zero-balance check-in; an absence streak's first).
    pub lesson_id: Option<String>,
    /// Lessons left, hundredths (low balance, expiring package).
    pub units: Option<i64>,
    /// When the package expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// `no_package`, `expired`, `exhausted` (zero-balance check-in); `offline`, `stale`,
    /// `not_running`, `gallery_unreachable` (camera).
    pub reason: Option<String>,
    /// A technical detail, as it is.
    pub detail: Option<String>,
    pub camera_id: Option<String>,
    /// The student of a parked check-in.
    pub student_id: Option<String>,
    /// How a parked check-in came.
    pub source: Option<String>,
    /// Make-ups this month; frames not recognised.
    pub count: Option<i64>,
    /// The school's number of make-ups a month.
    pub limit: Option<i64>,
    /// `YYYY-MM`.
    pub month: Option<String>,
}

/// Attendance counts of one class or student; `rate_bp`: attendance rate in basis points.
#[derive(Serialize, ToSchema)]
pub struct AttendanceRow {
    pub key: String,
    pub present: u64,
    pub late: u64,
    pub left_early: u64,
    pub absent: u64,
    pub excused: u64,
    pub rate_bp: u64,
}

/// Attendance rates per class and per student over a period.
#[derive(Serialize, ToSchema)]
pub struct AttendanceReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub per_class: Vec<AttendanceRow>,
    pub per_student: Vec<AttendanceRow>,
}

/// Check-ins at a campus on a weekday (0: Monday) and hour (school time).
#[derive(Serialize, ToSchema)]
pub struct HeatCell {
    pub campus_id: String,
    pub weekday: u32,
    pub hour: u32,
    pub count: u64,
}

/// Money in and out on one local day at one campus by one method.
#[derive(Serialize, ToSchema)]
pub struct CashRow {
    pub day: chrono::NaiveDate,
    pub campus_id: Option<String>,
    pub method: PaymentMethod,
    pub received_cents: i64,
    pub refunded_cents: i64,
}

/// Cash received and paid back over a range, with totals.
#[derive(Serialize, ToSchema)]
pub struct CashReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub rows: Vec<CashRow>,
    pub received_cents: i64,
    pub refunded_cents: i64,
    pub net_cents: i64,
}

/// Lessons used (net of reversals) and revenue recognised at the paid price, for one group.
#[derive(Serialize, ToSchema)]
pub struct ConsumptionRow {
    pub key: String,
    pub units: i64,
    pub lessons: String,
    pub revenue_cents: i64,
}

/// Revenue recognised by class, teacher and campus over a range.
#[derive(Serialize, ToSchema)]
pub struct ConsumptionReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub per_class: Vec<ConsumptionRow>,
    pub per_teacher: Vec<ConsumptionRow>,
    pub per_campus: Vec<ConsumptionRow>,
}

/// Lessons left (and owed) and their value for a student.
#[derive(Serialize, ToSchema)]
pub struct OutstandingRow {
    pub student_id: String,
    pub units: i64,
    pub lessons: String,
    pub value_cents: i64,
    pub overdraft_units: i64,
}

/// What a CSV file imports.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportKind {
    Campuses,
    Students,
    Guardians,
    Classes,
    Timetable,
    Packages,
    Enrollments,
}

/// An import's summary.
#[derive(Serialize, ToSchema)]
pub struct ImportSummary {
    pub kind: ImportKind,
    pub rows: u64,
}

/// Notifications per state of the outbox.
#[derive(Serialize, ToSchema)]
pub struct OutboxCounts {
    pub pending: i64,
    pub due: i64,
    pub in_flight: i64,
    pub sent: i64,
    pub dead: i64,
}

/// Kind of a notification.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    Arrival,
    Absence,
    AbsenceStreak,
    LowBalance,
    ExpiringPackage,
    ZeroBalance,
    ReviewNeeded,
    CameraOffline,
    CheckInFailed,
}

/// Who a notification goes to.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecipientKind {
    Guardian,
    Staff,
}

/// State of a notification.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    Pending,
    Sent,
    Dead,
}

/// One notification of the outbox.
#[derive(Serialize, ToSchema)]
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
    /// The notice's parameters (any JSON object).
    #[schema(value_type = Object)]
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
