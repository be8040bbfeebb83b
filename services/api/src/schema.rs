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
    pub lessons_bought: i64,
    pub unit_price_cents: i64,
    pub price_paid_cents: i64,
    pub balance_units: i64,
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

/// The school's refund rule.
#[derive(Serialize, ToSchema)]
pub struct RefundRule {
    pub keep_before_first_pct: u32,
    pub no_refund_after_consumed_pct: u32,
    pub fee_cents: i64,
}

/// Which case of the refund rule applied.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundCase {
    BeforeFirstLesson,
    TooMuchConsumed,
    Remaining,
    NothingLeft,
}

/// The refund rule applied to a package.
#[derive(Serialize, ToSchema)]
pub struct RefundQuote {
    pub eligible: bool,
    pub refund_cents: i64,
    pub units: i64,
    pub rule: RefundCase,
}

/// A refund made: the package and the quote's computation.
#[derive(Serialize, ToSchema)]
pub struct RefundResult {
    pub package_id: String,
    pub eligible: bool,
    pub refund_cents: i64,
    pub units: i64,
    pub rule: RefundCase,
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
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
