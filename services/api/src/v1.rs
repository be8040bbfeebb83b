//! `/api/v1`: JSON resources. Each handler gets the guard's [`Staff`], checks the campus of
//! what it reads or changes, and runs changes inside `as_actor` (audit rows name the staff).
//!
//! This file holds the route table (`mount`: every route with its method, roles and handler;
//! the OpenAPI document is built from it) and the helpers the feature modules share; the
//! handlers live in one module per feature below, which use this file's helpers and not each
//! other's items.

use crate::auth::{roles, Staff};
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use crate::Routes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rollcall_ledger::as_actor;
use serde::Deserialize;

mod accounts;
mod alerts;
mod attendance;
mod cameras;
mod daily;
mod finance;
mod imports;
mod leave;
mod notifications;
mod packages;
mod privacy;
mod reports;
mod review;
mod sales;
mod students;
pub(crate) mod timetable;

pub(crate) use accounts::{open_session, wait_words, Login};
pub(crate) use alerts::{alerts_for, set_alert};
pub(crate) use attendance::{board_json, check_in_by_hand};
pub(crate) use cameras::cameras_json;
pub(crate) use daily::{
    call_list_for, renewals_for, roll_call_for, search_for, teacher_day_for, CampusQuery, Contact,
    SearchQuery, TeacherQuery, ROLL_CALL_EARLY_MINUTES,
};
pub(crate) use finance::{finance_report, set_rate_for, FinanceQuery, PayBasis, SetRate};
pub(crate) use leave::{
    book_makeup_for, correct_for, decide_leave_for, enter_leave_for, leaves_for, may_correct,
    set_makeup_limit_for, BookMakeup, Correct, DecideLeave, EnterLeave,
};
pub(crate) use reports::{attendance_report, heatmap};
pub(crate) use review::{decide_review, review_list, Decide};
pub(crate) use sales::{
    ask_refund_as, decide_refund_as, order_in_reach, pay_as, refund_in_reach, refunds_in_reach,
    sell_as, set_policy_as,
};
pub(crate) use students::{
    add_guardian_for, edit as edit_student, edit_guardian, history as student_history, register,
    remove_guardian_for, ConsentIn, GuardianIn, RangeQuery, Registration, StudentEdit,
};

pub(crate) fn mount(r: Routes) -> Routes {
    let r = crate::ops_routes(r);
    r.add(
        "POST",
        "/api/v1/auth/login",
        "auth",
        None,
        "log in: sets the session cookie, returns the CSRF token",
        post(accounts::login),
    )
    .op("login")
    .takes::<Login>()
    .returns::<accounts::LoggedIn>()
    .add(
        "POST",
        "/api/v1/auth/logout",
        "auth",
        Some(roles::ANY),
        "end the session",
        post(accounts::logout),
    )
    .op("logout")
    .returns::<accounts::LoggedOut>()
    .add(
        "GET",
        "/api/v1/auth/me",
        "auth",
        Some(roles::ANY),
        "the calling account",
        get(accounts::me),
    )
    .op("getMe")
    .returns::<accounts::Me>()
    .add(
        "GET",
        "/api/v1/staff",
        "admin",
        Some(roles::ADMIN),
        "staff accounts",
        get(accounts::list_staff),
    )
    .op("listStaff")
    .returns::<accounts::StaffList>()
    .add(
        "POST",
        "/api/v1/staff",
        "admin",
        Some(roles::ADMIN),
        "create a staff account",
        post(accounts::create_staff),
    )
    .op("createStaff")
    .takes::<accounts::CreateStaff>()
    .creates::<accounts::CreatedStaff>()
    .add(
        "POST",
        "/api/v1/tokens",
        "admin",
        Some(roles::ADMIN),
        "create a bearer API token for an account (shown once)",
        post(accounts::create_token),
    )
    .op("createToken")
    .takes::<accounts::CreateToken>()
    .creates::<accounts::CreatedToken>()
    .add(
        "GET",
        "/api/v1/tokens",
        "admin",
        Some(roles::ANY),
        "API tokens without their secrets (id, username, name, created_at, revoked_at); admins see every account's (username= filters), others their own",
        get(accounts::list_tokens),
    )
    .op("listTokens")
    .returns::<accounts::TokenList>()
    .add(
        "DELETE",
        "/api/v1/tokens/{id}",
        "admin",
        Some(roles::ANY),
        "revoke an API token (an admin, or the token's owner): refused from the next request on; audited",
        delete(accounts::revoke_token),
    )
    .op("revokeToken")
    .returns::<accounts::RevokedToken>()
    .add(
        "GET",
        "/api/v1/audit",
        "admin",
        Some(roles::ADMIN),
        "audit log, newest first",
        get(accounts::audit),
    )
    .op("listAudit")
    .returns::<accounts::AuditLog>()
    .add(
        "GET",
        "/api/v1/students",
        "students",
        Some(roles::ANY),
        "students of the caller's campuses",
        get(students::list_students),
    )
    .op("listStudents")
    .returns::<students::StudentList>()
    .add(
        "POST",
        "/api/v1/students",
        "students",
        Some(roles::ENROLL),
        "register a student",
        post(students::create_student),
    )
    .op("createStudent")
    .takes::<students::CreateStudent>()
    .creates::<students::CreatedStudent>()
    .add(
        "GET",
        "/api/v1/students/{id}",
        "students",
        Some(roles::ANY),
        "a student with guardians, consents and balance",
        get(students::get_student),
    )
    .op("getStudent")
    .returns::<students::StudentDetail>()
    .add(
        "POST",
        "/api/v1/students/{id}/guardians",
        "students",
        Some(roles::ENROLL),
        "add a guardian (at most two per student, as at registration)",
        post(students::add_guardian),
    )
    .op("addGuardian")
    .takes::<students::CreateGuardian>()
    .creates::<students::CreatedGuardian>()
    .add(
        "POST",
        "/api/v1/students/{id}/consents",
        "students",
        Some(roles::ENROLL),
        "record a consent decision (JSON {kind, granted, given_by: guardian id, document_ref, expires_at}); withdrawing face_recognition consent erases the biometric data at once",
        post(students::add_consent),
    )
    .op("recordConsent")
    .takes::<students::Consent>()
    .creates::<students::ConsentsRecorded>()
    .add(
        "POST",
        "/api/v1/students/registrations",
        "students",
        Some(roles::ENROLL),
        "register a student with their guardians (1 or 2: contacts, WeChat id, language, notices) and the consent decision (with the signed form's reference and, when it has one, its expiry), in one transaction; audited",
        post(students::register_student),
    )
    .op("registerStudent")
    .takes::<students::Registration>()
    .creates::<students::Registered>()
    .add(
        "POST",
        "/api/v1/students/{id}/profile",
        "students",
        Some(roles::ENROLL),
        "change a student's name or home campus; audited",
        post(students::update_student),
    )
    .op("updateStudent")
    .takes::<students::StudentEdit>()
    .returns::<students::StudentChanged>()
    .add(
        "POST",
        "/api/v1/students/{id}/guardians/{guardian}",
        "students",
        Some(roles::ENROLL),
        "replace a guardian's details (name, phone, e-mail, WeChat id, language, channels, notices); audited",
        post(students::update_guardian),
    )
    .op("updateGuardian")
    .takes::<students::GuardianIn>()
    .returns::<students::GuardianChanged>()
    .add(
        "DELETE",
        "/api/v1/students/{id}/guardians/{guardian}",
        "students",
        Some(roles::ENROLL),
        "remove one of a student's guardians (a student keeps at least one; consent decisions they gave stay on record); audited",
        delete(students::remove_guardian),
    )
    .op("removeGuardian")
    .returns::<students::GuardianRemoved>()
    .add(
        "POST",
        "/api/v1/students/{id}/suspend",
        "students",
        Some(roles::ENROLL),
        "suspend a student (休学): off the call lists and not charged for absences; package expiry paused until resumed; audited",
        post(students::suspend),
    )
    .op("suspendStudent")
    .takes::<students::StatusChange>()
    .returns::<students::StatusChanged>()
    .add(
        "POST",
        "/api/v1/students/{id}/resume",
        "students",
        Some(roles::ENROLL),
        "resume a suspended student: each package unexpired at the suspension expires later by the suspension's length; audited",
        post(students::resume),
    )
    .op("resumeStudent")
    .returns::<students::ResumedDoc>()
    .add(
        "POST",
        "/api/v1/students/{id}/leave",
        "students",
        Some(roles::MANAGE),
        "the student leaves the school: unenrolled from every class, future make-ups cancelled, marked left (history kept; face data erased on the privacy schedule); audited",
        post(students::leave),
    )
    .op("leaveSchool")
    .takes::<students::StatusChange>()
    .returns::<students::LeftDoc>()
    .add(
        "GET",
        "/api/v1/students/{id}/attendance",
        "students",
        Some(roles::ANY),
        "a student's attendance history (from, to: school dates, default the last 90 days; status)",
        get(students::student_attendance),
    )
    .op("getStudentAttendance")
    .returns::<students::StudentAttendance>()
    .add(
        "GET",
        "/api/v1/daily/call-list",
        "daily",
        Some(roles::DESK),
        "today's not-arrived-yet list: booked students of lessons running now or starting within the hour without a check-in, with the guardians' phones (campus)",
        get(daily::call_list),
    )
    .op("getCallList")
    .returns::<daily::CallList>()
    .add(
        "GET",
        "/api/v1/daily/renewals",
        "daily",
        Some(roles::ENROLL),
        "the renewal list: active students with few lessons left (the school's alert threshold) or a package expiring within the warning days (campus)",
        get(daily::renewals),
    )
    .op("getRenewalList")
    .returns::<daily::RenewalList>()
    .add(
        "GET",
        "/api/v1/daily/students",
        "daily",
        Some(roles::ANY),
        "searchable student list with status, balance, classes and guardians (q: id, name, guardian name, phone or WeChat id; campus; status)",
        get(daily::search),
    )
    .op("searchStudents")
    .returns::<daily::StudentSearch>()
    .add(
        "GET",
        "/api/v1/teaching/today",
        "teaching",
        Some(roles::DESK),
        "a teacher's lessons of a day (date) with rosters, who is in and who is missing; a teacher sees their own (lessons.teacher = the account's username), others may name a teacher",
        get(daily::teacher_day),
    )
    .op("getTeacherDay")
    .returns::<daily::TeacherDay>()
    .add(
        "POST",
        "/api/v1/lessons/{id}/roll-call/{student}",
        "teaching",
        Some(roles::DESK),
        "roll call: mark a student of the lesson's roster present by hand (manual check-in, exactly once); a teacher only in their own lessons",
        post(daily::roll_call),
    )
    .op("rollCall")
    .returns::<daily::RollCalled>()
    .add(
        "GET",
        "/api/v1/students/{id}/balance",
        "ledger",
        Some(roles::ANY),
        "balance and packages",
        get(packages::balance),
    )
    .op("getBalance")
    .returns::<crate::schema::BalanceView>()
    .add(
        "GET",
        "/api/v1/students/{id}/ledger",
        "ledger",
        Some(roles::ANY),
        "ledger history",
        get(packages::ledger),
    )
    .op("getLedger")
    .returns::<packages::LedgerHistory>()
    .add(
        "POST",
        "/api/v1/students/{id}/packages",
        "ledger",
        Some(roles::MONEY),
        "buy a package",
        post(packages::purchase),
    )
    .op("purchasePackage")
    .takes::<packages::Purchase>()
    .creates::<packages::Purchased>()
    .add(
        "POST",
        "/api/v1/students/{id}/adjustments",
        "ledger",
        Some(roles::MONEY),
        "manual adjustment (signed hundredths of a lesson)",
        post(packages::adjust),
    )
    .op("adjustBalance")
    .takes::<packages::Adjust>()
    .returns::<packages::Adjusted>()
    .add(
        "POST",
        "/api/v1/students/{id}/reversals",
        "ledger",
        Some(roles::MONEY),
        "reverse a lesson's deduction",
        post(packages::reverse),
    )
    .op("reverseLesson")
    .takes::<packages::Reverse>()
    .returns::<packages::Reversed>()
    .add(
        "GET",
        "/api/v1/students/{id}/packages/{package}/refund",
        "ledger",
        Some(roles::MONEY),
        "refund quote: the school's rule applied to this package",
        get(packages::refund_quote),
    )
    .op("getRefundQuote")
    .returns::<packages::RefundQuoted>()
    .add(
        "POST",
        "/api/v1/students/{id}/packages/{package}/refund",
        "ledger",
        Some(roles::SELL),
        "ask for a refund of a package (reason, payout method): pending until a manager or admin other than the asker approves",
        post(sales::request_refund),
    )
    .op("requestRefund")
    .takes::<sales::RefundIn>()
    .creates::<sales::RefundOut>()
    .add(
        "GET",
        "/api/v1/refunds",
        "ledger",
        Some(roles::SELL),
        "refund requests, newest first (state: pending, approved, rejected)",
        get(sales::list_refunds),
    )
    .op("listRefunds")
    .returns::<sales::RefundList>()
    .add(
        "GET",
        "/api/v1/refunds/{id}",
        "ledger",
        Some(roles::SELL),
        "one refund request",
        get(sales::get_refund),
    )
    .op("getRefund")
    .returns::<sales::RefundOut>()
    .add(
        "POST",
        "/api/v1/refunds/{id}/approve",
        "ledger",
        Some(roles::MONEY),
        "approve a refund request (not the asker): recomputed now and booked",
        post(sales::approve_refund),
    )
    .op("approveRefund")
    .takes::<sales::DecideIn>()
    .returns::<sales::RefundOut>()
    .add(
        "POST",
        "/api/v1/refunds/{id}/reject",
        "ledger",
        Some(roles::MONEY),
        "reject a refund request",
        post(sales::reject_refund),
    )
    .op("rejectRefund")
    .takes::<sales::DecideIn>()
    .returns::<sales::RefundOut>()
    .add(
        "GET",
        "/api/v1/refund-policy",
        "ledger",
        Some(roles::SELL),
        "the school's refund policy (tiers by share of paid lessons used, fee)",
        get(sales::get_policy),
    )
    .op("getRefundPolicy")
    .returns::<sales::PolicyOut>()
    .add(
        "PUT",
        "/api/v1/refund-policy",
        "ledger",
        Some(roles::ADMIN),
        "replace the school's refund policy (audited)",
        put(sales::set_policy),
    )
    .op("setRefundPolicy")
    .takes::<sales::PolicyIn>()
    .returns::<sales::PolicyOut>()
    .add(
        "GET",
        "/api/v1/students/{id}/orders",
        "ledger",
        Some(roles::SELL),
        "a student's orders with payments and instalments",
        get(sales::list_orders),
    )
    .op("listOrders")
    .returns::<sales::OrderList>()
    .add(
        "POST",
        "/api/v1/students/{id}/orders",
        "ledger",
        Some(roles::SELL),
        "sell packages: lines (lessons, gift lessons, list price, discount with reason), first payment, instalments",
        post(sales::sell),
    )
    .op("sellPackages")
    .takes::<sales::OrderIn>()
    .creates::<sales::OrderOut>()
    .add(
        "GET",
        "/api/v1/orders/{id}",
        "ledger",
        Some(roles::SELL),
        "one order",
        get(sales::get_order),
    )
    .op("getOrder")
    .returns::<sales::OrderOut>()
    .add(
        "POST",
        "/api/v1/orders/{id}/payments",
        "ledger",
        Some(roles::SELL),
        "record a payment against an order (at most what is outstanding; a repeated key is a no-op)",
        post(sales::pay),
    )
    .op("recordPayment")
    .takes::<sales::PaymentIn>()
    .returns::<sales::PaymentOut>()
    .add(
        "GET",
        "/api/v1/students/{id}/photo",
        "students",
        Some(roles::ANY),
        "an enrolled face crop (JPEG)",
        get(students::student_photo),
    )
    .op("getStudentPhoto")
    .returns_raw(&["image/jpeg"])
    .add(
        "POST",
        "/api/v1/students/{id}/photos",
        "students",
        Some(roles::ENROLL),
        "enroll a photo (image/jpeg, image/png or image/webp body; HEIC/AVIF: 415 unsupported_photo_format; quality and duplicate verdict)",
        post(students::upload_photo),
    )
    .op("uploadStudentPhoto")
    .takes_raw(&["image/jpeg", "image/png", "image/webp"])
    .returns::<students::PhotoEnrolled>()
    .add(
        "POST",
        "/api/v1/students/{id}/erase",
        "students",
        Some(roles::ADMIN),
        "erase biometric data; returns the receipt",
        post(privacy::erase),
    )
    .op("eraseBiometrics")
    .returns::<privacy::Erased>()
    .add(
        "POST",
        "/api/v1/students/{id}/export",
        "students",
        Some(roles::ADMIN),
        "subject-access export: everything held about the student, as a download (JSON: the record and the enrollment photos, base64); nothing is kept on the server",
        post(privacy::export_subject),
    )
    .op("exportSubject")
    .returns::<privacy::SubjectExport>()
    .add(
        "POST",
        "/api/v1/students/{id}/consent/withdraw",
        "students",
        Some(roles::ADMIN),
        "record a guardian's consent withdrawal (JSON {by, document_ref}); erases the biometric data at once",
        post(privacy::withdraw_consent),
    )
    .op("withdrawConsent")
    .takes::<privacy::Withdrawal>()
    .returns::<privacy::Erased>()
    .add(
        "GET",
        "/api/v1/notifications",
        "notifications",
        Some(roles::ADMIN),
        "notification outbox: counts per state and the newest notices (state=pending|sent|dead, limit)",
        get(notifications::list_notifications),
    )
    .op("listNotifications")
    .returns::<notifications::Notifications>()
    .add(
        "GET",
        "/api/v1/classes",
        "timetable",
        Some(roles::ANY),
        "classes of the caller's campuses",
        get(timetable::list_classes),
    )
    .op("listClasses")
    .returns::<timetable::ClassList>()
    .add(
        "POST",
        "/api/v1/classes",
        "timetable",
        Some(roles::MANAGE),
        "create a class",
        post(timetable::create_class),
    )
    .op("createClass")
    .takes::<crate::schema::NewClass>()
    .creates::<timetable::CreatedClass>()
    .add(
        "POST",
        "/api/v1/classes/{id}/enrollments",
        "timetable",
        Some(roles::MANAGE),
        "enroll a student in a class",
        post(timetable::enroll),
    )
    .op("enrollStudent")
    .takes::<timetable::Enroll>()
    .creates::<timetable::Enrolled>()
    .add(
        "GET",
        "/api/v1/lessons",
        "timetable",
        Some(roles::ANY),
        "timetable of a day (date=YYYY-MM-DD, school time)",
        get(timetable::list_lessons),
    )
    .op("listLessons")
    .returns::<timetable::LessonList>()
    .add(
        "POST",
        "/api/v1/lessons",
        "timetable",
        Some(roles::MANAGE),
        "add a lesson",
        post(timetable::add_lesson),
    )
    .op("addLesson")
    .takes::<crate::schema::NewLesson>()
    .creates::<timetable::CreatedLesson>()
    .add(
        "PUT",
        "/api/v1/classes/{id}",
        "timetable",
        Some(roles::MANAGE),
        "edit a class (name, teacher, room, capacity, absence policy; the whole set): lessons not started yet follow a new teacher or room; a capacity below the enrolled number is refused; audited",
        put(timetable::edit_class),
    )
    .op("editClass")
    .takes::<timetable::EditClass>()
    .returns::<timetable::ClassEdited>()
    .add(
        "GET",
        "/api/v1/classes/{id}/series",
        "timetable",
        Some(roles::ANY),
        "a class's weekly series (weekday, school-time start, length, first and last day, lessons left)",
        get(timetable::list_series),
    )
    .op("listSeries")
    .returns::<timetable::SeriesList>()
    .add(
        "POST",
        "/api/v1/classes/{id}/slots",
        "timetable",
        Some(roles::MANAGE),
        "add one lesson (a slot, e.g. of a 1-on-1 class for a make-up) at a time still to come (JSON {start, minutes, room_id?}); room and teacher clashes refused; audited",
        post(timetable::add_slot),
    )
    .op("addSlot")
    .takes::<timetable::AddSlot>()
    .creates::<timetable::SlotAdded>()
    .add(
        "POST",
        "/api/v1/series",
        "timetable",
        Some(roles::MANAGE),
        "create a weekly series of a class's lessons from a first to a last day (school-local), skipping holidays; refused when a lesson would be in the past or its room or teacher is taken; audited",
        post(timetable::create_series),
    )
    .op("createSeries")
    .takes::<timetable::CreateSeries>()
    .creates::<timetable::SeriesChanged>()
    .add(
        "PUT",
        "/api/v1/series/{id}/end",
        "timetable",
        Some(roles::MANAGE),
        "move a series' last day (JSON {last_day, reason}): earlier cancels its later lessons (guardians told), later adds lessons; audited",
        put(timetable::set_series_end),
    )
    .op("setSeriesEnd")
    .takes::<timetable::SeriesEnd>()
    .returns::<timetable::SeriesChanged>()
    .add(
        "POST",
        "/api/v1/lessons/{id}/cancel",
        "timetable",
        Some(roles::MANAGE),
        "cancel a lesson (JSON {reason}): refused once attendance is recorded or it is finalised; its leave requests and make-up bookings go with it; the booked students' guardians are told through the outbox; audited",
        post(timetable::cancel_lesson),
    )
    .op("cancelLesson")
    .takes::<timetable::CancelLesson>()
    .returns::<timetable::LessonCancelled>()
    .add(
        "POST",
        "/api/v1/lessons/{id}/move",
        "timetable",
        Some(roles::MANAGE),
        "move a lesson not started yet to another time (and room or teacher; JSON {start, end, room_id?, teacher?, reason}): room and teacher clashes refused; the booked students' guardians are told; audited",
        post(timetable::move_lesson),
    )
    .op("moveLesson")
    .takes::<timetable::MoveLesson>()
    .returns::<timetable::LessonMoved>()
    .add(
        "GET",
        "/api/v1/holidays",
        "timetable",
        Some(roles::ANY),
        "the school's holidays from today on",
        get(timetable::list_holidays),
    )
    .op("listHolidays")
    .returns::<timetable::HolidayList>()
    .add(
        "POST",
        "/api/v1/holidays",
        "timetable",
        Some(roles::MANAGE),
        "declare a holiday (JSON {day, name}; today or later; an account of every campus): no series makes a lesson on it and that day's lessons still to come are cancelled (guardians told); audited",
        post(timetable::add_holiday),
    )
    .op("addHoliday")
    .takes::<timetable::AddHoliday>()
    .creates::<timetable::HolidayAdded>()
    .add(
        "DELETE",
        "/api/v1/holidays/{day}",
        "timetable",
        Some(roles::MANAGE),
        "remove a holiday (today or later; an account of every campus); lessons it cancelled stay cancelled; audited",
        delete(timetable::remove_holiday),
    )
    .op("removeHoliday")
    .returns::<timetable::HolidayRemoved>()
    .add(
        "POST",
        "/api/v1/students/{id}/transfer",
        "timetable",
        Some(roles::MANAGE),
        "move a student from one class to another (JSON {from_class, to_class, reason}) within its capacity; the packages stay the student's (one must cover the new campus); audited",
        post(timetable::transfer),
    )
    .op("transferStudent")
    .takes::<timetable::Transfer>()
    .returns::<timetable::Transferred>()
    .add(
        "GET",
        "/api/v1/lessons/{id}/attendance",
        "attendance",
        Some(roles::ANY),
        "attendance of one lesson",
        get(attendance::lesson_attendance),
    )
    .op("getLessonAttendance")
    .returns::<attendance::LessonAttendance>()
    .add(
        "PUT",
        "/api/v1/lessons/{id}/attendance/{student}",
        "attendance",
        Some(roles::DESK),
        "correct a recorded status",
        put(attendance::mark),
    )
    .op("correctAttendance")
    .takes::<attendance::Mark>()
    .returns::<attendance::AttendanceCorrected>()
    .add(
        "POST",
        "/api/v1/lessons/{id}/attendance/{student}/correction",
        "attendance",
        Some(roles::DESK),
        "correct an attendance and its money (JSON {status, reason}): the status is set and, in the same transaction, the lesson's deductions are reversed and what the new status costs is charged (attended: a lesson; absent/excused: the class's absence policy); a teacher corrects only the lessons they teach; audited",
        post(leave::correct),
    )
    .op("correctAttendanceAndCharge")
    .takes::<leave::Correct>()
    .returns::<leave::Corrected>()
    .add(
        "GET",
        "/api/v1/leaves",
        "leave",
        Some(roles::ANY),
        "leave requests of the caller's campuses (state=pending|approved|refused, student=id), with their make-up lesson",
        get(leave::list_leaves),
    )
    .op("listLeaves")
    .returns::<leave::LeaveList>()
    .add(
        "POST",
        "/api/v1/students/{id}/leaves",
        "leave",
        Some(roles::DESK),
        "enter a guardian's leave request for an upcoming lesson the student is booked into (JSON {lesson_id, reason}): pending until decided; a teacher only for a lesson they teach; audited",
        post(leave::enter_leave),
    )
    .op("enterLeave")
    .takes::<leave::EnterLeave>()
    .creates::<leave::OneLeave>()
    .add(
        "POST",
        "/api/v1/students/{id}/leaves/{lesson}/decision",
        "leave",
        Some(roles::ENROLL),
        "approve or refuse a pending leave request (JSON {decision: approve|refuse, note}); an approved leave is excused at finalisation per the class's absence policy; audited",
        post(leave::decide_leave),
    )
    .op("decideLeave")
    .takes::<leave::DecideLeave>()
    .returns::<leave::OneLeave>()
    .add(
        "POST",
        "/api/v1/students/{id}/makeups",
        "leave",
        Some(roles::ENROLL),
        "book a make-up (JSON {missed_lesson_id, lesson_id}): a lesson of another class, on a campus one of the student's packages covers, linked to the missed lesson; says when the student's make-ups this month pass the school's number; audited",
        post(leave::book_makeup),
    )
    .op("bookMakeup")
    .takes::<leave::BookMakeup>()
    .creates::<leave::MakeupBooked>()
    .add(
        "GET",
        "/api/v1/settings/makeups",
        "leave",
        Some(roles::ANY),
        "the school's number of make-ups a month per student past which a booking is flagged",
        get(leave::get_makeup_limit),
    )
    .op("getMakeupLimit")
    .returns::<leave::MakeupLimit>()
    .add(
        "PUT",
        "/api/v1/settings/makeups",
        "leave",
        Some(roles::MANAGE),
        "set the school's monthly make-up number (0-100; an account of every campus); audited",
        put(leave::set_makeup_limit),
    )
    .op("setMakeupLimit")
    .takes::<leave::MakeupLimit>()
    .returns::<leave::MakeupLimit>()
    .add(
        "GET",
        "/api/v1/attendance/board",
        "attendance",
        Some(roles::ANY),
        "today's board: lessons × present/late/absent/not yet",
        get(attendance::board),
    )
    .op("getBoard")
    .returns::<attendance::Board>()
    .add(
        "POST",
        "/api/v1/attendance/checkins",
        "attendance",
        Some(roles::DESK),
        "manual or QR/card check-in",
        post(attendance::checkin),
    )
    .op("checkIn")
    .takes::<attendance::Checkin>()
    .returns::<attendance::CheckedIn>()
    .add(
        "GET",
        "/api/v1/review",
        "review",
        Some(roles::ANY),
        "review queue (state=pending|approved|rejected|reassigned)",
        get(review::list_review),
    )
    .op("listReviewItems")
    .returns::<review::ReviewList>()
    .add(
        "GET",
        "/api/v1/review/{id}",
        "review",
        Some(roles::ANY),
        "one review item",
        get(review::get_review),
    )
    .op("getReviewItem")
    .returns::<review::OneReviewItem>()
    .add(
        "GET",
        "/api/v1/review/{id}/crop",
        "review",
        Some(roles::ANY),
        "the captured crop (JPEG)",
        get(review::review_crop),
    )
    .op("getReviewCrop")
    .returns_raw(&["image/jpeg"])
    .add(
        "POST",
        "/api/v1/review/{id}/decision",
        "review",
        Some(roles::REVIEW),
        "approve (check-in), reject, or reassign (check-in + hard negative)",
        post(review::decide),
    )
    .op("decideReviewItem")
    .takes::<Decide>()
    .returns::<crate::schema::ReviewOutcome>()
    .add(
        "GET",
        "/api/v1/alerts",
        "alerts",
        Some(roles::ANY),
        "alerts (state=open|acknowledged|resolved)",
        get(alerts::list_alerts),
    )
    .op("listAlerts")
    .returns::<alerts::AlertList>()
    .add(
        "POST",
        "/api/v1/alerts/{id}/acknowledge",
        "alerts",
        Some(roles::ALERTS),
        "acknowledge an alert",
        post(alerts::ack_alert),
    )
    .op("acknowledgeAlert")
    .returns::<alerts::AlertChanged>()
    .add(
        "POST",
        "/api/v1/alerts/{id}/resolve",
        "alerts",
        Some(roles::ALERTS),
        "resolve an alert",
        post(alerts::resolve_alert),
    )
    .op("resolveAlert")
    .returns::<alerts::AlertChanged>()
    .add(
        "GET",
        "/api/v1/cameras",
        "cameras",
        Some(roles::ANY),
        "cameras and their health",
        get(cameras::cameras),
    )
    .op("listCameras")
    .returns::<cameras::CameraList>()
    .add(
        "GET",
        "/api/v1/reports/attendance",
        "reports",
        Some(roles::ANY),
        "attendance rates per class and student (from, to: dates)",
        get(reports::report_attendance),
    )
    .op("getAttendanceReport")
    .returns::<crate::schema::AttendanceReport>()
    .add(
        "GET",
        "/api/v1/reports/heatmap",
        "reports",
        Some(roles::ANY),
        "check-ins by campus × weekday × hour",
        get(reports::report_heatmap),
    )
    .op("getHeatmap")
    .returns::<reports::Heatmap>()
    .add(
        "GET",
        "/api/v1/reports/outstanding",
        "reports",
        Some(roles::MONEY),
        "outstanding lessons and value per student",
        get(reports::report_outstanding),
    )
    .op("getOutstandingReport")
    .returns::<reports::Outstanding>()
    .add(
        "GET",
        "/api/v1/reports/finance",
        "reports",
        Some(roles::MONEY),
        "cash by day/campus/method, revenue recognised (paid price) by class/teacher/campus, prepaid liability, teacher pay at each teacher's stored rates (from, to: local dates; campus: one of the reader's; per_lesson_cents, per_student_cents: a what-if at these rates instead, pay_basis says which); a campus-limited account sees its campuses' figures only",
        get(finance::finance),
    )
    .op("getFinanceReport")
    .returns::<finance::FinanceReport>()
    .add(
        "GET",
        "/api/v1/reports/finance.csv",
        "reports",
        Some(roles::MONEY),
        "one part of the finance report as CSV (part: cash, revenue, teaching)",
        get(finance::finance_csv),
    )
    .op("getFinanceCsv")
    .returns_raw(&["text/csv"])
    .add(
        "GET",
        "/api/v1/reports/finance.xlsx",
        "reports",
        Some(roles::MONEY),
        "the finance report as an XLSX workbook (a sheet per part)",
        get(finance::finance_xlsx),
    )
    .op("getFinanceXlsx")
    .returns_raw(&["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"])
    .add(
        "GET",
        "/api/v1/teacher-rates",
        "reports",
        Some(roles::MONEY),
        "teachers' stored pay rates (per lesson held, per attending student; cents) by teacher and the local date each applies from, and the teachers a rate may be set for",
        get(finance::list_rates),
    )
    .op("listTeacherRates")
    .returns::<finance::TeacherRates>()
    .add(
        "POST",
        "/api/v1/teacher-rates",
        "reports",
        Some(roles::ADMIN),
        "store a teacher's pay rates from a local date on (JSON {teacher, effective_from, per_lesson_cents, per_student_cents}; replaces a rate of the same date; an admin of every campus); audited",
        post(finance::set_rate),
    )
    .op("setTeacherRate")
    .takes::<finance::SetRate>()
    .returns::<finance::RateSet>()
    .add(
        "POST",
        "/api/v1/import/{kind}",
        "import",
        Some(roles::MANAGE),
        "CSV import (text/csv body), all or nothing",
        post(imports::import),
    )
    .op("importCsv")
    .takes_raw(&["text/csv"])
    .returns::<imports::Imported>()
    .add(
        "GET",
        "/api/v1/export/students.csv",
        "import",
        Some(roles::MANAGE),
        "students as CSV",
        get(imports::export_students),
    )
    .op("exportStudentsCsv")
    .returns_raw(&["text/csv"])
    .add(
        "GET",
        "/api/v1/export/ledger.csv",
        "import",
        Some(roles::MONEY),
        "ledger entries as CSV",
        get(imports::export_ledger),
    )
    .op("exportLedgerCsv")
    .returns_raw(&["text/csv"])
}

// -------------------------------------------------------------------------------------------
// helpers
// -------------------------------------------------------------------------------------------

async fn student_in_scope(st: &AppState, staff: &Staff, id: &str) -> ApiResult<()> {
    student_in_reach(st, staff, id).await.map(|_| ())
}

/// The student `id`, when the reader's campuses reach them: existence first (404), then scope
/// (403).
pub(crate) async fn student_in_reach(
    st: &AppState,
    staff: &Staff,
    id: &str,
) -> ApiResult<rollcall_ledger::StudentView> {
    let s = st.store.student(id).await?;
    if !staff.is_all_campuses() {
        staff.any_campus(&s.campuses)?;
    }
    Ok(s)
}

fn day_bounds(st: &AppState, date: Option<&str>) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let off = st.store.tz_offset_minutes();
    let day = match date {
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| ApiError::invalid(format!("date {d:?}: expected YYYY-MM-DD")))?,
        None => (st.store.now() + Duration::minutes(off)).date_naive(),
    };
    let start = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
        - Duration::minutes(off);
    Ok((start, start + Duration::days(1)))
}

fn parse_id(s: &str) -> ApiResult<i64> {
    s.parse::<i64>()
        .map_err(|_| ApiError::not_found(format!("no item {s:?}")))
}

async fn run<F: std::future::Future>(staff: &Staff, f: F) -> F::Output {
    as_actor(staff.actor(), f).await
}

fn jpeg(bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            // children's faces: never kept by the browser or a proxy
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response()
}

/// School-wide records (the audit log, the notification outbox) need an account scoped to
/// every campus.
fn require_all_campuses(staff: &Staff) -> ApiResult<()> {
    if staff.is_all_campuses() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_campus",
            "this school-wide record needs an account scoped to every campus",
        ))
    }
}

#[derive(Deserialize)]
struct DayQuery {
    date: Option<String>,
    campus: Option<String>,
}

#[derive(Deserialize)]
struct StateQuery {
    state: Option<String>,
    limit: Option<i64>,
}
