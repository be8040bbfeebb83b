//! The staff web app under `/app`: server-rendered HTML, tablet-friendly CSS, English and
//! Chinese (`?lang=zh` / `?lang=en`, remembered in a `lang` cookie). Forms carry the session's
//! CSRF token in `_csrf`; the only JavaScript is the enrollment page's live upload feedback.
//!
//! Every page is a compiled askama template (`#[derive(Template)]`, HTML-escaped by default):
//! the handlers hand the templates plain text, never HTML. This module holds what the pages
//! share (routes, the guard, the reader's language, CSRF, local time); `layout` the page
//! around them and the error pages; one module per group of pages.

mod admin;
mod alerts;
mod board;
mod checkin;
mod daily;
mod finance;
mod layout;
mod leave;
mod login;
mod review;
mod sales;
mod students;
mod timetable;
mod words;

use crate::auth::{self, roles, Staff};
use crate::error::ApiError;
use crate::{AppState, Routes};
use askama::Template;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, FixedOffset, Utc};
use rollcall_ledger::Role;

pub(crate) use layout::unknown_app_page;
use words::t;

pub(crate) fn mount(r: Routes) -> Routes {
    r.add(
        "GET",
        "/app/login",
        "web",
        None,
        "login page",
        get(login::login_page),
    )
    .add(
        "POST",
        "/app/login",
        "web",
        None,
        "login form",
        post(login::login_form),
    )
    .web(
        "POST",
        "/app/logout",
        roles::ANY,
        "log out",
        post(login::logout),
    )
    .web(
        "GET",
        "/app",
        roles::ANY,
        "today's attendance board",
        get(board::board_page),
    )
    .web(
        "GET",
        "/app/checkin",
        roles::DESK,
        "check a student in by hand or by card",
        get(checkin::checkin_page),
    )
    .web(
        "POST",
        "/app/checkin",
        roles::DESK,
        "check a student in by hand or by card (form)",
        post(checkin::checkin_form),
    )
    .web(
        "GET",
        "/app/students/{id}/card",
        roles::DESK,
        "a student's printable card with the QR code to scan at check-in",
        get(checkin::card_page),
    )
    .web(
        "GET",
        "/app/review",
        roles::ANY,
        "review queue",
        get(review::review_page),
    )
    .web(
        "POST",
        "/app/review/{id}",
        roles::REVIEW,
        "decide a review item (form)",
        post(review::review_form),
    )
    .web(
        "GET",
        "/app/students",
        roles::ANY,
        "students",
        get(students::students_page),
    )
    .web(
        "GET",
        "/app/students/new",
        roles::ENROLL,
        "register a student with guardians and consent",
        get(students::register_page),
    )
    .web(
        "POST",
        "/app/students/new",
        roles::ENROLL,
        "register a student with guardians and consent (form)",
        post(students::register_form),
    )
    .web(
        "GET",
        "/app/students/{id}",
        roles::ANY,
        "student: status, balance, guardians, consents, classes, packages, attendance history, ledger",
        get(students::student_page),
    )
    .web(
        "GET",
        "/app/students/{id}/edit",
        roles::ENROLL,
        "edit a student's name, campus and guardians",
        get(students::edit_page),
    )
    .web(
        "POST",
        "/app/students/{id}/edit",
        roles::ENROLL,
        "edit a student's name and campus (form)",
        post(students::edit_form),
    )
    .web(
        "POST",
        "/app/students/{id}/guardians/{guardian}",
        roles::ENROLL,
        "edit a guardian (form)",
        post(students::guardian_form),
    )
    .web(
        "POST",
        "/app/students/{id}/guardians",
        roles::ENROLL,
        "add a guardian (form; at most two, as at registration)",
        post(students::guardian_add_form),
    )
    .web(
        "POST",
        "/app/students/{id}/guardians/{guardian}/remove",
        roles::ENROLL,
        "remove a guardian (form; a student keeps at least one)",
        post(students::guardian_remove_form),
    )
    .web(
        "POST",
        "/app/students/{id}/status",
        roles::ENROLL,
        "suspend, resume or leave the school (form; leaving: managers and admins)",
        post(students::status_form),
    )
    .web(
        "GET",
        "/app/daily",
        roles::DESK,
        "daily lists: not arrived yet (with guardians' phones), renewals",
        get(daily::daily_page),
    )
    .web(
        "GET",
        "/app/teaching",
        roles::DESK,
        "my lessons today: rosters, who is in, who is missing, roll call",
        get(daily::teaching_page),
    )
    .web(
        "POST",
        "/app/lessons/{id}/roll-call",
        roles::DESK,
        "roll call: mark a student present by hand (form)",
        post(daily::roll_call_form),
    )
    .web(
        "GET",
        "/app/finance",
        roles::MONEY,
        "finance: cash by day/campus/method, revenue recognised, prepaid liability, teacher pay; CSV and XLSX",
        get(finance::finance_page),
    )
    .web(
        "POST",
        "/app/finance/rates",
        roles::ADMIN,
        "store a teacher's pay rates from a date on (form)",
        post(finance::rates_form),
    )
    .web(
        "GET",
        "/app/students/{id}/money",
        roles::ANY,
        "a student's orders, packages with their price paid, refund requests",
        get(sales::money_page),
    )
    .web(
        "GET",
        "/app/students/{id}/sell",
        roles::SELL,
        "sell a package: lessons, gift lessons, discount with reason, payment, instalments",
        get(sales::sell_page),
    )
    .web(
        "POST",
        "/app/students/{id}/sell",
        roles::SELL,
        "sell a package (form)",
        post(sales::sell_form),
    )
    .web(
        "GET",
        "/app/orders/{id}",
        roles::SELL,
        "an order: printable receipt, payments, instalments, payment form",
        get(sales::order_page),
    )
    .web(
        "POST",
        "/app/orders/{id}/pay",
        roles::SELL,
        "record a payment (form)",
        post(sales::pay_form),
    )
    .web(
        "GET",
        "/app/students/{id}/refund/{package}",
        roles::SELL,
        "a package's refund computation and the refund request form",
        get(sales::ask_refund_page),
    )
    .web(
        "POST",
        "/app/students/{id}/refund/{package}",
        roles::SELL,
        "ask for a refund (form)",
        post(sales::ask_refund_form),
    )
    .web(
        "GET",
        "/app/refunds",
        roles::SELL,
        "refund requests: approve or reject (managers and admins who did not ask)",
        get(sales::refunds_page),
    )
    .web(
        "POST",
        "/app/refunds/{id}",
        roles::MONEY,
        "approve or reject a refund request (form)",
        post(sales::decide_form),
    )
    .web(
        "GET",
        "/app/refunds/{id}",
        roles::SELL,
        "a printable refund slip",
        get(sales::slip_page),
    )
    .web(
        "GET",
        "/app/refund-policy",
        roles::SELL,
        "the school's refund policy table",
        get(sales::policy_page),
    )
    .web(
        "POST",
        "/app/refund-policy",
        roles::ADMIN,
        "replace the refund policy table (form)",
        post(sales::policy_form),
    )
    .web(
        "GET",
        "/app/timetable",
        roles::ANY,
        "the week's timetable (date: any day of the week; school time), cancelled lessons with why",
        get(timetable::week_page),
    )
    .web(
        "GET",
        "/app/lessons/{id}",
        roles::ANY,
        "one lesson: who is booked; move or cancel it (managers)",
        get(timetable::lesson_page),
    )
    .web(
        "POST",
        "/app/lessons/{id}/cancel",
        roles::MANAGE,
        "cancel a lesson (form)",
        post(timetable::cancel_form),
    )
    .web(
        "POST",
        "/app/lessons/{id}/move",
        roles::MANAGE,
        "move a lesson (form)",
        post(timetable::move_form),
    )
    .web(
        "GET",
        "/app/classes",
        roles::ANY,
        "the classes with teacher, room and places taken; a new class (managers)",
        get(timetable::classes_page),
    )
    .web(
        "POST",
        "/app/classes",
        roles::MANAGE,
        "create a class (form)",
        post(timetable::new_class_form),
    )
    .web(
        "GET",
        "/app/classes/{id}",
        roles::ANY,
        "one class: its settings, weekly series, 1-on-1 slots and roster with transfers (managers change them)",
        get(timetable::class_page),
    )
    .web(
        "POST",
        "/app/classes/{id}/edit",
        roles::MANAGE,
        "edit a class (form)",
        post(timetable::edit_class_form),
    )
    .web(
        "POST",
        "/app/classes/{id}/series",
        roles::MANAGE,
        "create a weekly series (form)",
        post(timetable::series_form),
    )
    .web(
        "POST",
        "/app/classes/{id}/slots",
        roles::MANAGE,
        "add a lesson slot (form)",
        post(timetable::slot_form),
    )
    .web(
        "POST",
        "/app/classes/{id}/transfer",
        roles::MANAGE,
        "transfer a student to another class (form)",
        post(timetable::transfer_form),
    )
    .web(
        "POST",
        "/app/series/{id}/end",
        roles::MANAGE,
        "move a series' last day (form)",
        post(timetable::series_end_form),
    )
    .web(
        "GET",
        "/app/holidays",
        roles::ANY,
        "the school's holidays; declare or remove one (managers of every campus)",
        get(timetable::holidays_page),
    )
    .web(
        "POST",
        "/app/holidays",
        roles::MANAGE,
        "declare a holiday (form)",
        post(timetable::holiday_form),
    )
    .web(
        "POST",
        "/app/holidays/remove",
        roles::MANAGE,
        "remove a holiday (form)",
        post(timetable::holiday_remove_form),
    )
    .web(
        "GET",
        "/app/leave",
        roles::ANY,
        "leave and make-up: pending leave requests (approve/refuse), a student's leave form and make-up booking, the monthly make-up number",
        get(leave::leave_page),
    )
    .web(
        "POST",
        "/app/leave/request",
        roles::DESK,
        "enter a guardian's leave request (form; a teacher for the lessons they teach)",
        post(leave::leave_request_form),
    )
    .web(
        "POST",
        "/app/leave/decide",
        roles::ENROLL,
        "approve or refuse a leave request (form)",
        post(leave::leave_decide_form),
    )
    .web(
        "POST",
        "/app/leave/makeup",
        roles::ENROLL,
        "book a make-up for a missed lesson (form)",
        post(leave::makeup_form),
    )
    .web(
        "POST",
        "/app/leave/limit",
        roles::MANAGE,
        "set the school's monthly make-up number (form)",
        post(leave::limit_form),
    )
    .web(
        "GET",
        "/app/students/{id}/attendance",
        roles::ANY,
        "a student's attendance and what each lesson cost, with a correction form per lesson",
        get(leave::attendance_page),
    )
    .web(
        "POST",
        "/app/attendance/correct",
        roles::DESK,
        "correct an attendance and its money (form)",
        post(leave::correct_form),
    )
    .web(
        "GET",
        "/app/alerts",
        roles::ANY,
        "alerts",
        get(alerts::alerts_page),
    )
    .web(
        "POST",
        "/app/alerts/{id}",
        roles::ALERTS,
        "acknowledge/resolve an alert (form)",
        post(alerts::alert_form),
    )
    .web(
        "GET",
        "/app/cameras",
        roles::ANY,
        "camera health",
        get(admin::cameras_page),
    )
    .web(
        "GET",
        "/app/privacy",
        roles::ANY,
        "what biometric data is kept, and for how long",
        get(admin::privacy_page),
    )
    .web(
        "GET",
        "/app/reports",
        roles::ANY,
        "attendance rates and heat map",
        get(admin::reports_page),
    )
    .web(
        "GET",
        "/app/enroll",
        roles::ENROLL,
        "enrollment with live quality feedback",
        get(admin::enroll_page),
    )
}

impl Routes {
    fn web(
        mut self,
        method: &'static str,
        path: &'static str,
        roles: &'static [Role],
        summary: &'static str,
        handler: axum::routing::MethodRouter<AppState>,
    ) -> Self {
        let h = handler.route_layer(axum::middleware::from_fn_with_state(
            (self.state.clone(), roles),
            web_guard,
        ));
        self.router = self.router.route(path, h);
        self.docs.push(crate::RouteDoc {
            method,
            path,
            summary,
            roles: Some(roles),
            tag: "web",
        });
        self
    }
}

/// Like the API guard, but an anonymous visitor is sent to the login page and form posts
/// check `_csrf` in the handler (the form body is read there).
async fn web_guard(
    State((st, roles)): State<(AppState, &'static [Role])>,
    mut req: Request,
    next: Next,
) -> Response {
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let staff = match auth::authenticate(&st, req.headers(), ip).await {
        Ok(Some(s)) if s.csrf.is_some() => s,
        Ok(_) => return Redirect::to("/app/login").into_response(),
        Err(e) => return e.into_response(),
    };
    let lang = lang_of(req.headers(), req.uri().query());
    if staff.require(roles).is_err() {
        return layout::forbidden_page(lang, &staff);
    }
    req.extensions_mut().insert(staff.clone());
    req.extensions_mut().insert(lang);
    let set_lang = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("lang=")))
        .and_then(Lang::parse);
    let unsafe_method = req.method() != axum::http::Method::GET;
    let resp = next.run(req).await;
    let mut resp = layout::friendly_error(resp, lang, &staff).await;
    if unsafe_method {
        st.cache.clear_boards();
    }
    if let Some(l) = set_lang {
        if let Ok(v) = format!(
            "lang={}; Path=/; SameSite=Strict; Max-Age=31536000",
            l.code()
        )
        .parse()
        {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    En,
    Zh,
}

impl Lang {
    fn parse(s: &str) -> Option<Lang> {
        match s {
            "en" => Some(Lang::En),
            "zh" | "zh-CN" | "zh-cn" => Some(Lang::Zh),
            _ => None,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }
    /// The `lang` attribute of a page in this language.
    fn html_lang(&self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }
}

/// A template that shows words in the reader's language: `{{ t("key") }}` in its source.
trait Words {
    fn lang(&self) -> Lang;
    fn t(&self, key: &str) -> &'static str {
        t(self.lang(), key)
    }
}

/// `impl Words` for templates whose language is their `lang` field.
macro_rules! words_in_lang_field {
    ($($ty:ty),* $(,)?) => {$(
        impl crate::web::Words for $ty {
            fn lang(&self) -> crate::web::Lang {
                self.lang
            }
        }
    )*};
}
use words_in_lang_field;

fn lang_of(h: &HeaderMap, query: Option<&str>) -> Lang {
    query
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("lang=")))
        .and_then(Lang::parse)
        .or_else(|| auth::cookie(h, "lang").as_deref().and_then(Lang::parse))
        .or_else(|| {
            h.get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.starts_with("zh"))
                .map(|_| Lang::Zh)
        })
        .unwrap_or(Lang::En)
}

/// A rendered template as the page's HTML (rendering fails only if a value's `Display` does,
/// which none of ours do; it would be a server error, not a panic).
fn html<T: Template>(page: &T) -> Result<Html<String>, ApiError> {
    page.render()
        .map(Html)
        .map_err(|e| ApiError::internal(format!("rendering the page: {e}")))
}

fn check_csrf(staff: &Staff, sent: &str) -> Result<(), ApiError> {
    match &staff.csrf {
        Some(c) if auth::constant_eq(c.as_bytes(), sent.as_bytes()) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "the form's CSRF token is missing or stale; reload the page",
        )),
    }
}

/// `t` as the school's wall-clock time: every time a person reads is the school's local time.
fn local(st: &AppState, t: DateTime<Utc>) -> DateTime<FixedOffset> {
    let utc = FixedOffset::east_opt(0).expect("zero is a valid offset");
    let off = i32::try_from(st.store.tz_offset_minutes() * 60)
        .ok()
        .and_then(FixedOffset::east_opt)
        .unwrap_or(utc);
    t.with_timezone(&off)
}

/// An RFC 3339 time from the API's JSON as the school's local "HH:MM" (the text itself when it
/// is not such a time).
fn local_hm(st: &AppState, s: &str) -> String {
    DateTime::parse_from_rfc3339(s)
        .map(|t| local(st, t.with_timezone(&Utc)).format("%H:%M").to_string())
        .unwrap_or_else(|_| s.to_string())
}

/// Percent-encodes everything but unreserved characters (for a query value).
fn url(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An option of a select or a checkbox: its value, its words, whether it is chosen.
pub(super) struct Opt {
    pub(super) value: String,
    pub(super) label: String,
    pub(super) selected: bool,
}

impl Opt {
    pub(super) fn new(value: impl Into<String>, label: impl Into<String>, selected: bool) -> Opt {
        Opt {
            value: value.into(),
            label: label.into(),
            selected,
        }
    }
}

/// A student of a searchable list (the reassign field, the check-in field).
pub(super) struct Choice {
    pub(super) id: String,
    pub(super) name: String,
}

/// The students a reader may pick: those of the reader's campuses, by id with their names.
pub(super) fn picker(students: &[rollcall_ledger::StudentView], staff: &Staff) -> Vec<Choice> {
    students
        .iter()
        .filter(|s| staff.is_all_campuses() || s.campuses.iter().any(|c| staff.allows_campus(c)))
        .map(|s| Choice {
            id: s.id.clone(),
            name: s.name.clone(),
        })
        .collect()
}
