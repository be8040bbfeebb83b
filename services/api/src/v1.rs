//! `/api/v1`: JSON resources. Each handler gets the guard's [`Staff`], checks the campus of
//! what it reads or changes, and runs changes inside `as_actor` (audit rows name the staff).

use crate::auth::{self, roles, Staff};
use crate::error::{ApiError, ApiResult};
use crate::{AppState, JsonBody, Routes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rollcall_domain::ledger::{quote_refund, AlertState, AttendanceSource, AttendanceStatus};
use rollcall_domain::photo::PhotoFormat;
use rollcall_ledger::{
    as_actor, CampusScope, CheckIn, NewClass, NewGuardian, NewLesson, NewPackage, NewStaff,
    NewStudent, ReviewDecision, ReviewState, Role,
};
use serde::Deserialize;
use serde_json::{json, Value};

pub(crate) fn mount(r: Routes) -> Routes {
    let r = crate::ops_routes(r);
    r.add(
        "POST",
        "/api/v1/auth/login",
        "auth",
        None,
        "log in: sets the session cookie, returns the CSRF token",
        post(login),
    )
    .add(
        "POST",
        "/api/v1/auth/logout",
        "auth",
        Some(roles::ANY),
        "end the session",
        post(logout),
    )
    .add(
        "GET",
        "/api/v1/auth/me",
        "auth",
        Some(roles::ANY),
        "the calling account",
        get(me),
    )
    .add(
        "GET",
        "/api/v1/staff",
        "admin",
        Some(roles::ADMIN),
        "staff accounts",
        get(list_staff),
    )
    .add(
        "POST",
        "/api/v1/staff",
        "admin",
        Some(roles::ADMIN),
        "create a staff account",
        post(create_staff),
    )
    .add(
        "POST",
        "/api/v1/tokens",
        "admin",
        Some(roles::ADMIN),
        "create a bearer API token for an account (shown once)",
        post(create_token),
    )
    .add(
        "GET",
        "/api/v1/tokens",
        "admin",
        Some(roles::ANY),
        "API tokens without their secrets (id, username, name, created_at, revoked_at); admins see every account's (username= filters), others their own",
        get(list_tokens),
    )
    .add(
        "DELETE",
        "/api/v1/tokens/{id}",
        "admin",
        Some(roles::ANY),
        "revoke an API token (an admin, or the token's owner): refused from the next request on; audited",
        delete(revoke_token),
    )
    .add(
        "GET",
        "/api/v1/audit",
        "admin",
        Some(roles::ADMIN),
        "audit log, newest first",
        get(audit),
    )
    .add(
        "GET",
        "/api/v1/students",
        "students",
        Some(roles::ANY),
        "students of the caller's campuses",
        get(list_students),
    )
    .add(
        "POST",
        "/api/v1/students",
        "students",
        Some(roles::ENROLL),
        "register a student",
        post(create_student),
    )
    .add(
        "GET",
        "/api/v1/students/{id}",
        "students",
        Some(roles::ANY),
        "a student with guardians, consents and balance",
        get(get_student),
    )
    .add(
        "POST",
        "/api/v1/students/{id}/guardians",
        "students",
        Some(roles::ENROLL),
        "add a guardian",
        post(add_guardian),
    )
    .add(
        "POST",
        "/api/v1/students/{id}/consents",
        "students",
        Some(roles::ENROLL),
        "record a consent decision (JSON {kind, granted, given_by: guardian id, document_ref, expires_at}); withdrawing face_recognition consent erases the biometric data at once",
        post(add_consent),
    )
    .add(
        "GET",
        "/api/v1/students/{id}/balance",
        "ledger",
        Some(roles::ANY),
        "balance and packages",
        get(balance),
    )
    .add(
        "GET",
        "/api/v1/students/{id}/ledger",
        "ledger",
        Some(roles::ANY),
        "ledger history",
        get(ledger),
    )
    .add(
        "POST",
        "/api/v1/students/{id}/packages",
        "ledger",
        Some(roles::MONEY),
        "buy a package",
        post(purchase),
    )
    .add(
        "POST",
        "/api/v1/students/{id}/adjustments",
        "ledger",
        Some(roles::MONEY),
        "manual adjustment (signed hundredths of a lesson)",
        post(adjust),
    )
    .add(
        "POST",
        "/api/v1/students/{id}/reversals",
        "ledger",
        Some(roles::MONEY),
        "reverse a lesson's deduction",
        post(reverse),
    )
    .add(
        "GET",
        "/api/v1/students/{id}/packages/{package}/refund",
        "ledger",
        Some(roles::MONEY),
        "refund quote: the school's rule applied to this package",
        get(refund_quote),
    )
    .add(
        "POST",
        "/api/v1/students/{id}/packages/{package}/refund",
        "ledger",
        Some(roles::MONEY),
        "refund a package (the quote's computation is returned)",
        post(refund),
    )
    .add(
        "GET",
        "/api/v1/students/{id}/photo",
        "students",
        Some(roles::ANY),
        "an enrolled face crop (JPEG)",
        get(student_photo),
    )
    .add(
        "POST",
        "/api/v1/students/{id}/photos",
        "students",
        Some(roles::ENROLL),
        "enroll a photo (image/jpeg, image/png or image/webp body; HEIC/AVIF: 415 unsupported_photo_format; quality and duplicate verdict)",
        post(upload_photo),
    )
    .add(
        "POST",
        "/api/v1/students/{id}/erase",
        "students",
        Some(roles::ADMIN),
        "erase biometric data; returns the receipt",
        post(erase),
    )
    .add(
        "POST",
        "/api/v1/students/{id}/export",
        "students",
        Some(roles::ADMIN),
        "subject-access export: everything held about the student, as a download (JSON: the record and the enrollment photos, base64); nothing is kept on the server",
        post(export_subject),
    )
    .add(
        "POST",
        "/api/v1/students/{id}/consent/withdraw",
        "students",
        Some(roles::ADMIN),
        "record a guardian's consent withdrawal (JSON {by, document_ref}); erases the biometric data at once",
        post(withdraw_consent),
    )
    .add(
        "GET",
        "/api/v1/notifications",
        "notifications",
        Some(roles::ADMIN),
        "notification outbox: counts per state and the newest notices (state=pending|sent|dead, limit)",
        get(list_notifications),
    )
    .add(
        "GET",
        "/api/v1/classes",
        "timetable",
        Some(roles::ANY),
        "classes of the caller's campuses",
        get(list_classes),
    )
    .add(
        "POST",
        "/api/v1/classes",
        "timetable",
        Some(roles::MANAGE),
        "create a class",
        post(create_class),
    )
    .add(
        "POST",
        "/api/v1/classes/{id}/enrollments",
        "timetable",
        Some(roles::MANAGE),
        "enroll a student in a class",
        post(enroll),
    )
    .add(
        "GET",
        "/api/v1/lessons",
        "timetable",
        Some(roles::ANY),
        "timetable of a day (date=YYYY-MM-DD, school time)",
        get(list_lessons),
    )
    .add(
        "POST",
        "/api/v1/lessons",
        "timetable",
        Some(roles::MANAGE),
        "add a lesson",
        post(add_lesson),
    )
    .add(
        "GET",
        "/api/v1/lessons/{id}/attendance",
        "attendance",
        Some(roles::ANY),
        "attendance of one lesson",
        get(lesson_attendance),
    )
    .add(
        "PUT",
        "/api/v1/lessons/{id}/attendance/{student}",
        "attendance",
        Some(roles::DESK),
        "correct a recorded status",
        put(mark),
    )
    .add(
        "GET",
        "/api/v1/attendance/board",
        "attendance",
        Some(roles::ANY),
        "today's board: lessons × present/late/absent/not yet",
        get(board),
    )
    .add(
        "POST",
        "/api/v1/attendance/checkins",
        "attendance",
        Some(roles::DESK),
        "manual or QR/card check-in",
        post(checkin),
    )
    .add(
        "GET",
        "/api/v1/review",
        "review",
        Some(roles::ANY),
        "review queue (state=pending|approved|rejected|reassigned)",
        get(list_review),
    )
    .add(
        "GET",
        "/api/v1/review/{id}",
        "review",
        Some(roles::ANY),
        "one review item",
        get(get_review),
    )
    .add(
        "GET",
        "/api/v1/review/{id}/crop",
        "review",
        Some(roles::ANY),
        "the captured crop (JPEG)",
        get(review_crop),
    )
    .add(
        "POST",
        "/api/v1/review/{id}/decision",
        "review",
        Some(roles::REVIEW),
        "approve (check-in), reject, or reassign (check-in + hard negative)",
        post(decide),
    )
    .add(
        "GET",
        "/api/v1/alerts",
        "alerts",
        Some(roles::ANY),
        "alerts (state=open|acknowledged|resolved)",
        get(list_alerts),
    )
    .add(
        "POST",
        "/api/v1/alerts/{id}/acknowledge",
        "alerts",
        Some(roles::ALERTS),
        "acknowledge an alert",
        post(ack_alert),
    )
    .add(
        "POST",
        "/api/v1/alerts/{id}/resolve",
        "alerts",
        Some(roles::ALERTS),
        "resolve an alert",
        post(resolve_alert),
    )
    .add(
        "GET",
        "/api/v1/cameras",
        "cameras",
        Some(roles::ANY),
        "cameras and their health",
        get(cameras),
    )
    .add(
        "GET",
        "/api/v1/reports/attendance",
        "reports",
        Some(roles::ANY),
        "attendance rates per class and student (from, to: dates)",
        get(report_attendance),
    )
    .add(
        "GET",
        "/api/v1/reports/heatmap",
        "reports",
        Some(roles::ANY),
        "check-ins by campus × weekday × hour",
        get(report_heatmap),
    )
    .add(
        "GET",
        "/api/v1/reports/outstanding",
        "reports",
        Some(roles::MONEY),
        "outstanding lessons and value per student",
        get(report_outstanding),
    )
    .add(
        "POST",
        "/api/v1/import/{kind}",
        "import",
        Some(roles::MANAGE),
        "CSV import (text/csv body), all or nothing",
        post(import),
    )
    .add(
        "GET",
        "/api/v1/export/students.csv",
        "import",
        Some(roles::MANAGE),
        "students as CSV",
        get(export_students),
    )
    .add(
        "GET",
        "/api/v1/export/ledger.csv",
        "import",
        Some(roles::MONEY),
        "ledger entries as CSV",
        get(export_ledger),
    )
}

// -------------------------------------------------------------------------------------------
// helpers
// -------------------------------------------------------------------------------------------

async fn student_in_scope(st: &AppState, staff: &Staff, id: &str) -> ApiResult<()> {
    // existence first (404), then scope (403)
    let s = st.store.student(id).await?;
    if staff.is_all_campuses() {
        return Ok(());
    }
    staff.any_campus(&s.campuses)
}

fn day_bounds(st: &AppState, date: Option<&str>) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let off = st.store.tz_offset_minutes();
    let day = match date {
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| ApiError::invalid(format!("date {d:?}: expected YYYY-MM-DD")))?,
        None => (Utc::now() + Duration::minutes(off)).date_naive(),
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

async fn export_subject(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    student_in_scope(&st, &staff, &id).await?;
    let bundle = run(&staff, st.ops.export(&id)).await?;
    let body = serde_json::to_vec(&json!({ "export": bundle }))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{}-export.json\"",
                    rollcall_domain::ids::path_component(&id)
                ),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Withdrawal {
    /// Guardian (or staff member) who withdrew.
    pub by: String,
    pub document_ref: Option<String>,
}

async fn withdraw_consent(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(w): JsonBody<Withdrawal>,
) -> ApiResult<Json<Value>> {
    if w.by.trim().is_empty() {
        return Err(ApiError::invalid("`by` must name who withdrew consent"));
    }
    student_in_scope(&st, &staff, &id).await?;
    let receipt = run(&staff, st.ops.withdraw_consent(&id, &w.by, w.document_ref)).await?;
    Ok(Json(json!({"receipt": receipt})))
}

async fn list_notifications(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<StateQuery>,
) -> ApiResult<Json<Value>> {
    // the outbox holds guardians' addresses of every campus
    require_all_campuses(&staff)?;
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(rollcall_ledger::OutboxState::parse(s).ok_or_else(|| {
            ApiError::invalid(format!("state {s:?}: expected pending, sent or dead"))
        })?),
    };
    let now = chrono::Utc::now();
    let counts = st.store.outbox_counts(now).await?;
    let rows = st
        .store
        .outbox(state, q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    Ok(Json(json!({"counts": counts, "notifications": rows})))
}

// -------------------------------------------------------------------------------------------
// auth and staff
// -------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    pub username: String,
    pub password: String,
}

/// "12 second(s)" / "3 minute(s)" (`zh`: "12 秒" / "3 分钟").
pub(crate) fn wait_words(secs: u64, zh: bool) -> String {
    match (secs < 60, zh) {
        (true, false) => format!("{secs} second(s)"),
        (true, true) => format!("{secs} 秒"),
        (false, false) => format!("{} minute(s)", secs.div_ceil(60)),
        (false, true) => format!("{} 分钟", secs.div_ceil(60)),
    }
}

/// Checks credentials and opens a session; returns (cookie header, csrf, account). Failed
/// attempts are throttled per username and per address (`ApiConfig::login_limits`): over the
/// limit the answer is 429 `too_many_attempts` with `Retry-After`, without checking the
/// password.
pub(crate) async fn open_session(
    st: &AppState,
    l: &Login,
    ip: Option<String>,
) -> ApiResult<(String, String, rollcall_ledger::StaffAccount)> {
    // counted as a failure from here on unless the credentials turn out right
    let attempt = match st
        .cache
        .logins
        .begin(&st.config.login_limits, &l.username, ip.as_deref())
    {
        Ok(a) => a,
        Err(wait) => {
            tracing::warn!(ip = ?ip, "login throttled after repeated failures");
            return Err(ApiError::too_many(
                "too_many_attempts",
                format!(
                    "too many failed logins for this account or from this address; try again in {}",
                    wait_words(wait, false)
                ),
                wait,
            ));
        }
    };
    let acc = st.store.staff(&l.username).await?;
    // exactly one argon2 check whoever asks (unknown accounts against a dummy hash), off the
    // async threads: the answer's time does not tell whether the username exists
    let ok = auth::check_password(
        st,
        &l.password,
        acc.as_ref().map(|a| a.password_hash.clone()),
    )
    .await;
    let acc = match acc {
        Some(a) if ok && !a.disabled => a,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
                "wrong username or password",
            ));
        }
    };
    st.cache.logins.succeeded(attempt);
    let token = auth::new_token("");
    let csrf = auth::new_token("");
    let ttl = st.config.session_hours.max(1);
    let actor = rollcall_ledger::Actor {
        name: acc.username.clone(),
        role: acc.role.as_str().into(),
        ip,
    };
    as_actor(
        actor,
        st.store.create_session(
            &acc.username,
            &auth::token_hash(&token),
            &csrf,
            Utc::now() + Duration::hours(ttl),
        ),
    )
    .await?;
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        auth::SESSION_COOKIE,
        ttl * 3600,
        if st.config.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    Ok((cookie, csrf, acc))
}

async fn login(
    State(st): State<AppState>,
    auth::ClientIp(ip): auth::ClientIp,
    JsonBody(l): JsonBody<Login>,
) -> ApiResult<Response> {
    let (cookie, csrf, acc) = open_session(&st, &l, ip).await?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({"username": acc.username, "role": acc.role, "campuses": acc.campuses, "csrf": csrf})),
    )
        .into_response())
}

async fn logout(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
) -> ApiResult<Response> {
    if let Some(h) = &staff.session_hash {
        st.cache.forget(&format!("s:{h}"));
        run(&staff, st.store.end_session(h)).await?;
    }
    Ok((
        [(
            header::SET_COOKIE,
            format!(
                "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
                auth::SESSION_COOKIE
            ),
        )],
        Json(json!({"logged_out": true})),
    )
        .into_response())
}

async fn me(Extension(staff): Extension<Staff>) -> Json<Value> {
    Json(json!({"account": staff.account, "csrf": staff.csrf}))
}

/// Whether `target` (an account's campuses) lies inside the caller's campuses: an admin
/// limited to campuses sees, creates and hands tokens to such accounts only.
fn scope_within(staff: &Staff, target: &CampusScope) -> bool {
    match target {
        _ if staff.is_all_campuses() => true,
        CampusScope::All => false,
        CampusScope::Only(v) => !v.is_empty() && v.iter().all(|c| staff.allows_campus(c)),
    }
}

fn forbidden_scope() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden_campus",
        "that account reaches campuses beyond your account's",
    )
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

/// The account `username` when it lies inside the caller's campuses (404 when unknown).
async fn account_in_scope(st: &AppState, staff: &Staff, username: &str) -> ApiResult<()> {
    let acc = st
        .store
        .staff(username)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown account {username:?}")))?;
    if scope_within(staff, &acc.campuses) {
        Ok(())
    } else {
        Err(forbidden_scope())
    }
}

async fn list_staff(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
) -> ApiResult<Json<Value>> {
    let v: Vec<_> = st
        .store
        .list_staff()
        .await?
        .into_iter()
        .filter(|a| scope_within(&staff, &a.campuses))
        .collect();
    Ok(Json(json!({"staff": v})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateStaff {
    username: String,
    display_name: Option<String>,
    role: Role,
    /// `["*"]` or missing: every campus.
    campuses: Option<Vec<String>>,
    password: String,
}

async fn create_staff(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(c): JsonBody<CreateStaff>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let hash = auth::hash_password_gated(&st, &c.password).await?;
    let campuses = match c.campuses {
        None => CampusScope::All,
        Some(v) if v.iter().any(|c| c == "*") => CampusScope::All,
        Some(v) => CampusScope::Only(v),
    };
    if !scope_within(&staff, &campuses) {
        return Err(forbidden_scope());
    }
    let n = NewStaff {
        display_name: c.display_name.unwrap_or_else(|| c.username.clone()),
        username: c.username,
        role: c.role,
        campuses,
    };
    run(&staff, st.store.create_staff(&n, &hash)).await?;
    Ok((StatusCode::CREATED, Json(json!({"staff": n}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    username: String,
    name: String,
}

async fn create_token(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(c): JsonBody<CreateToken>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    account_in_scope(&st, &staff, &c.username).await?;
    let token = auth::new_token("rc_");
    let id = auth::new_token("")[..12].to_string();
    run(
        &staff,
        st.store
            .create_api_token(&c.username, &id, &c.name, &auth::token_hash(&token)),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "username": c.username, "name": c.name, "token": token})),
    ))
}

#[derive(Deserialize)]
struct TokenQuery {
    username: Option<String>,
}

async fn list_tokens(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<TokenQuery>,
) -> ApiResult<Json<Value>> {
    let me = &staff.account.username;
    let user = if staff.role() == Role::Admin {
        q.username.filter(|u| !u.is_empty())
    } else {
        if q.username.as_ref().is_some_and(|u| u != me) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_role",
                "only an admin may list other accounts' tokens",
            ));
        }
        Some(me.clone())
    };
    let mut tokens = st.store.list_api_tokens(user.as_deref()).await?;
    if !staff.is_all_campuses() && staff.role() == Role::Admin {
        // an admin limited to campuses: the tokens of the accounts inside them (and its own)
        let accounts = st.store.list_staff().await?;
        tokens.retain(|t| {
            &t.username == me
                || accounts
                    .iter()
                    .any(|a| a.username == t.username && scope_within(&staff, &a.campuses))
        });
    }
    Ok(Json(json!({ "tokens": tokens })))
}

async fn revoke_token(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let t = st.store.api_token(&id).await?;
    if staff.role() != Role::Admin && t.username != staff.account.username {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_role",
            "only an admin or the token's owner may revoke it",
        ));
    }
    if t.username != staff.account.username {
        account_in_scope(&st, &staff, &t.username).await?;
    }
    let t = run(&staff, st.store.revoke_api_token(&id)).await?;
    // committed: no cached credential may outlive it
    st.cache.forget_all_credentials();
    Ok(Json(json!({"revoked": t})))
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<i64>,
}

async fn audit(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<Limit>,
) -> ApiResult<Json<Value>> {
    require_all_campuses(&staff)?;
    let rows = st
        .store
        .audit_rows(q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    Ok(Json(json!({"audit": rows})))
}

// -------------------------------------------------------------------------------------------
// students
// -------------------------------------------------------------------------------------------

async fn list_students(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
) -> ApiResult<Json<Value>> {
    let all = st.store.students().await?;
    let v: Vec<_> = all
        .into_iter()
        .filter(|s| staff.is_all_campuses() || s.campuses.iter().any(|c| staff.allows_campus(c)))
        .collect();
    Ok(Json(json!({"students": v})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateStudent {
    id: String,
    name: String,
    home_campus_id: Option<String>,
}

async fn create_student(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(c): JsonBody<CreateStudent>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    match &c.home_campus_id {
        Some(campus) => staff.campus(campus)?,
        None if !staff.is_all_campuses() => {
            return Err(ApiError::invalid(
                "home_campus_id: required for an account scoped to campuses",
            ))
        }
        None => {}
    }
    let n = NewStudent {
        id: c.id,
        name: c.name,
        home_campus_id: c.home_campus_id,
    };
    run(&staff, st.store.create_student(&n)).await?;
    Ok((StatusCode::CREATED, Json(json!({"student": n}))))
}

async fn get_student(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    student_in_scope(&st, &staff, &id).await?;
    let s = st.store.student(&id).await?;
    Ok(Json(json!({
        "student": s,
        "guardians": st.store.guardians(&id).await?,
        "consents": st.store.consents(&id).await?,
        "balance": st.store.balance(&id, Utc::now()).await?,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateGuardian {
    id: String,
    name: String,
    phone: Option<String>,
    email: Option<String>,
    language: Option<String>,
    notify_prefs: Option<String>,
}

async fn add_guardian(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(g): JsonBody<CreateGuardian>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    student_in_scope(&st, &staff, &id).await?;
    let g = NewGuardian {
        id: g.id,
        student_id: id,
        name: g.name,
        phone: g.phone,
        email: g.email,
        language: g.language.unwrap_or_else(|| "en".into()),
        notify_prefs: g.notify_prefs.unwrap_or_default(),
    };
    run(&staff, st.store.add_guardian(&g)).await?;
    Ok((StatusCode::CREATED, Json(json!({"guardian": g}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Consent {
    kind: String,
    granted: bool,
    /// The guardian's id (a grant must name a registered guardian of the student).
    given_by: String,
    /// Reference of the signed form (required for a grant).
    document_ref: Option<String>,
    /// When a grant ends by itself.
    expires_at: Option<chrono::DateTime<Utc>>,
}

async fn add_consent(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(c): JsonBody<Consent>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    student_in_scope(&st, &staff, &id).await?;
    if c.kind.is_empty() || c.kind.len() > 64 {
        return Err(ApiError::invalid("kind: 1–64 characters"));
    }
    // who decided: a registered guardian of this student (grants and withdrawals alike)
    if !st
        .store
        .guardians(&id)
        .await?
        .iter()
        .any(|g| g.id == c.given_by)
    {
        return Err(ApiError::invalid(format!(
            "given_by: {:?} is not a registered guardian of student {id:?}",
            c.given_by
        )));
    }
    if c.kind == rollcall_domain::privacy::FACE_CONSENT && !c.granted {
        // withdrawing face-recognition consent erases the biometric data at once: the
        // erasure is an admin's (as `/erase` and `/consent/withdraw`)
        staff.require(roles::ADMIN)?;
        let receipt = run(
            &staff,
            st.ops
                .withdraw_consent(&id, &c.given_by, c.document_ref.clone()),
        )
        .await?;
        return Ok((
            StatusCode::CREATED,
            Json(json!({"consents": st.store.consents(&id).await?, "erasure": receipt})),
        ));
    }
    // validated: a registered guardian of the student, a document for a grant, a sane expiry
    run(
        &staff,
        st.store.record_consent_decision(
            &id,
            &rollcall_domain::privacy::ConsentRecord {
                kind: c.kind.clone(),
                granted: c.granted,
                given_by: c.given_by.clone(),
                at: Utc::now(),
                document_ref: c.document_ref.clone(),
                expires_at: c.expires_at,
            },
        ),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"consents": st.store.consents(&id).await?})),
    ))
}

async fn balance(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    student_in_scope(&st, &staff, &id).await?;
    Ok(Json(json!(st.store.balance(&id, Utc::now()).await?)))
}

async fn ledger(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    student_in_scope(&st, &staff, &id).await?;
    Ok(Json(json!({"entries": st.store.entries(Some(&id)).await?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Purchase {
    id: String,
    campus_id: Option<String>,
    lessons: i64,
    unit_price_cents: i64,
    price_paid_cents: Option<i64>,
    bought_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
}

async fn purchase(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(p): JsonBody<Purchase>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    student_in_scope(&st, &staff, &id).await?;
    if let Some(c) = &p.campus_id {
        staff.campus(c)?;
    }
    if p.lessons <= 0 || p.lessons > 10_000 {
        return Err(ApiError::invalid("lessons: 1–10000"));
    }
    if p.unit_price_cents < 0 || p.price_paid_cents.is_some_and(|v| v < 0) {
        return Err(ApiError::invalid("prices must not be negative"));
    }
    let n = NewPackage {
        id: p.id,
        student_id: id.clone(),
        campus_id: p.campus_id,
        lessons: p.lessons,
        unit_price_cents: p.unit_price_cents,
        price_paid_cents: p.price_paid_cents,
        bought_at: p.bought_at.unwrap_or_else(Utc::now),
        expires_at: p.expires_at,
    };
    run(&staff, st.store.purchase(&n)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"package": n, "balance": st.store.balance(&id, Utc::now()).await?})),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Adjust {
    package_id: Option<String>,
    units: i64,
    key: String,
    note: String,
}

async fn adjust(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(a): JsonBody<Adjust>,
) -> ApiResult<Json<Value>> {
    student_in_scope(&st, &staff, &id).await?;
    if a.key.is_empty() || a.note.trim().is_empty() {
        return Err(ApiError::invalid("key and note are required"));
    }
    let user = staff.account.username.clone();
    let applied = run(
        &staff,
        st.store.adjust(
            &id,
            a.package_id.as_deref(),
            a.units,
            &a.key,
            &user,
            &a.note,
        ),
    )
    .await?;
    Ok(Json(
        json!({"applied": applied, "balance": st.store.balance(&id, Utc::now()).await?}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reverse {
    lesson_id: String,
    note: String,
}

async fn reverse(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(r): JsonBody<Reverse>,
) -> ApiResult<Json<Value>> {
    student_in_scope(&st, &staff, &id).await?;
    // the lesson too: a child of two campuses has lessons at a campus beyond the caller's
    let lesson = st.store.lesson(&r.lesson_id).await?;
    staff.campus(&lesson.campus_id)?;
    let user = staff.account.username.clone();
    let entries = run(
        &staff,
        st.store.reverse_lesson(&id, &r.lesson_id, &user, &r.note),
    )
    .await?;
    Ok(Json(
        json!({"reversals": entries, "balance": st.store.balance(&id, Utc::now()).await?}),
    ))
}

async fn refund_quote(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path((id, package)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    student_in_scope(&st, &staff, &id).await?;
    let b = st.store.balance(&id, Utc::now()).await?;
    let p = b
        .packages
        .iter()
        .find(|p| p.package.package_id == package)
        .ok_or_else(|| ApiError::not_found(format!("unknown package {package:?}")))?;
    let q = quote_refund(&st.store.policy().refund, &p.package);
    Ok(Json(
        json!({"package_id": package, "rule": st.store.policy().refund, "quote": q}),
    ))
}

async fn refund(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path((id, package)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    student_in_scope(&st, &staff, &id).await?;
    let user = staff.account.username.clone();
    let r = run(&staff, st.store.refund(&id, &package, &user)).await?;
    Ok(Json(json!({"refund": r, "rule": st.store.policy().refund})))
}

fn crops_root(st: &AppState) -> std::path::PathBuf {
    st.config.data_dir.join("crops")
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

async fn student_photo(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    student_in_scope(&st, &staff, &id).await?;
    // crops are <crops>/<school>/<student>/<template>.jpg, each id through the one escaping
    // helper enrollment writes them with (an id stored before ids were checked for
    // separators cannot reach another directory either)
    let dir = rollcall_domain::ids::student_crops_dir(&crops_root(&st), st.store.school_id(), &id);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let f = files
        .first()
        .ok_or_else(|| ApiError::not_found(format!("no enrolled photo of {id}")))?;
    let bytes = tokio::fs::read(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(jpeg(bytes))
}

#[derive(Deserialize)]
struct UploadQuery {
    filename: Option<String>,
}

/// A file name as given by a client: a plain name, no directories, no traversal.
pub(crate) fn safe_file_name(name: &str) -> ApiResult<String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.contains(['/', '\\', '\0'])
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && name.chars().all(|c| !c.is_control());
    if ok {
        Ok(name.to_string())
    } else {
        Err(ApiError::bad_request(
            "bad_file_name",
            format!("file name {name:?} is not a plain file name"),
        ))
    }
}

/// HEIC and AVIF photos (an iPhone's default, some Android cameras) cannot be decoded here:
/// whether the client labelled the body so or the bytes say so, the answer names the format and
/// says what to do (code `unsupported_photo_format`; the staff app shows it in zh-CN or English).
fn refuse_unconverted_photo(headers: &HeaderMap, body: &[u8]) -> ApiResult<()> {
    let labelled = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(PhotoFormat::from_mime);
    let sniffed = PhotoFormat::sniff(body);
    match [Some(sniffed), labelled]
        .into_iter()
        .flatten()
        .find(|f| f.needs_conversion())
    {
        Some(f) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_photo_format",
            format!("{f} photo: not supported; {}", f.conversion_advice()),
        )),
        None => Ok(()),
    }
}

async fn upload_photo(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    crate::RawBody(body): crate::RawBody,
) -> ApiResult<Json<Value>> {
    refuse_unconverted_photo(&headers, &body)?;
    crate::require_type(&headers, &["image/jpeg", "image/png", "image/webp"])?;
    if let Some(n) = &q.filename {
        safe_file_name(n)?;
    }
    student_in_scope(&st, &staff, &id).await?;
    let (w, h) = image::ImageReader::new(std::io::Cursor::new(&body[..]))
        .with_guessed_format()
        .map_err(|e| ApiError::bad_request("not_an_image", e.to_string()))?
        .into_dimensions()
        .map_err(|e| ApiError::bad_request("not_an_image", format!("not a readable image: {e}")))?;
    if w < 32 || h < 32 || w > 12_000 || h > 12_000 {
        return Err(ApiError::invalid(format!(
            "image {w}×{h}: expected 32–12000 px a side"
        )));
    }
    let mut verdict = run(&staff, st.ops.enroll_photo(&id, body.to_vec())).await?;
    if !staff.is_all_campuses() {
        redact_duplicates(&mut verdict);
    }
    Ok(Json(
        json!({"student_id": id, "filename": q.filename, "width": w, "height": h, "verdict": verdict}),
    ))
}

/// For an account limited to campuses: a duplicate-check verdict says "possible duplicate"
/// and nothing about the other child (who may be at another campus: id and similarity are
/// removed, the refusal stays).
fn redact_duplicates(verdict: &mut Value) {
    if let Some(d) = verdict.get_mut("duplicates").and_then(Value::as_array_mut) {
        for x in d.iter_mut() {
            if let Some(o) = x.as_object_mut() {
                o.remove("other_student");
                o.remove("similarity");
            }
        }
    }
    if let Some(r) = verdict.get_mut("rejected").and_then(Value::as_array_mut) {
        for x in r.iter_mut() {
            if x.get("code").and_then(Value::as_str) == Some("possible_duplicate") {
                x["message"] = json!("possible duplicate");
                x["message_zh"] = json!("可能重复录入");
            }
        }
    }
}

async fn erase(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    student_in_scope(&st, &staff, &id).await?;
    let receipt = run(&staff, st.ops.erase(&id)).await?;
    Ok(Json(json!({"receipt": receipt})))
}

// -------------------------------------------------------------------------------------------
// timetable
// -------------------------------------------------------------------------------------------

async fn list_classes(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
) -> ApiResult<Json<Value>> {
    let v: Vec<_> = st
        .store
        .classes()
        .await?
        .into_iter()
        .filter(|c| staff.allows_campus(&c.campus_id))
        .collect();
    Ok(Json(json!({"classes": v})))
}

async fn create_class(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(k): JsonBody<NewClass>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    staff.campus(&k.campus_id)?;
    run(&staff, st.store.create_class(&k)).await?;
    Ok((StatusCode::CREATED, Json(json!({"class": k}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Enroll {
    student_id: String,
}

async fn class_in_scope(st: &AppState, staff: &Staff, class: &str) -> ApiResult<()> {
    let campus = st
        .store
        .class_campus(class)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown class {class:?}")))?;
    staff.campus(&campus)
}

async fn enroll(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(e): JsonBody<Enroll>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    class_in_scope(&st, &staff, &id).await?;
    // the child too: enrolling would add the class's campus to another campus's student
    student_in_scope(&st, &staff, &e.student_id).await?;
    run(&staff, st.store.enroll(&id, &e.student_id, Utc::now())).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"class_id": id, "student_id": e.student_id})),
    ))
}

#[derive(Deserialize)]
struct DayQuery {
    date: Option<String>,
    campus: Option<String>,
}

async fn list_lessons(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<DayQuery>,
) -> ApiResult<Json<Value>> {
    if let Some(c) = &q.campus {
        staff.campus(c)?;
    }
    let (from, to) = day_bounds(&st, q.date.as_deref())?;
    let v: Vec<_> = st
        .store
        .lessons_between(from, to)
        .await?
        .into_iter()
        .filter(|l| staff.allows_campus(&l.campus_id))
        .filter(|l| q.campus.as_ref().is_none_or(|c| &l.campus_id == c))
        .collect();
    Ok(Json(json!({"from": from, "to": to, "lessons": v})))
}

async fn add_lesson(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(l): JsonBody<NewLesson>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    class_in_scope(&st, &staff, &l.class_id).await?;
    if l.end <= l.start {
        return Err(ApiError::invalid("end must be after start"));
    }
    run(&staff, st.store.add_lesson(&l)).await?;
    Ok((StatusCode::CREATED, Json(json!({"lesson": l}))))
}

// -------------------------------------------------------------------------------------------
// attendance
// -------------------------------------------------------------------------------------------

async fn lesson_attendance(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let l = st.store.lesson(&id).await?;
    staff.campus(&l.campus_id)?;
    let (from, to) = (l.start, l.start + Duration::milliseconds(1));
    let board = st.store.board(from, to).await?;
    let one = board.into_iter().find(|b| b.lesson.id == id);
    Ok(Json(json!({"lesson": one})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mark {
    status: AttendanceStatus,
}

async fn mark(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path((id, student)): Path<(String, String)>,
    JsonBody(m): JsonBody<Mark>,
) -> ApiResult<Json<Value>> {
    let l = st.store.lesson(&id).await?;
    staff.campus(&l.campus_id)?;
    let user = staff.account.username.clone();
    let before = run(
        &staff,
        st.store
            .set_attendance_status(&student, &id, m.status, &user),
    )
    .await?;
    Ok(Json(
        json!({"lesson_id": id, "student_id": student, "before": before, "after": m.status}),
    ))
}

async fn board(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<DayQuery>,
) -> ApiResult<Response> {
    // the same board for the same day, campus filter and campus scope (see crate::Caches)
    let key = format!(
        "{:?}|{:?}|{}",
        q.date,
        q.campus,
        serde_json::to_string(&staff.account.campuses).unwrap_or_default()
    );
    let hit = st
        .cache
        .board
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .filter(|(at, _)| at.elapsed() < crate::BOARD_TTL)
        .map(|(_, b)| b.clone());
    let bytes = match hit {
        Some(b) => b,
        None => {
            let v = board_json(&st, &staff, &q.date, &q.campus).await?;
            let b = axum::body::Bytes::from(
                serde_json::to_vec(&v).map_err(|e| ApiError::internal(e.to_string()))?,
            );
            let mut m = st.cache.board.lock().unwrap_or_else(|e| e.into_inner());
            if m.len() > 1_000 {
                m.clear();
            }
            m.insert(key, (std::time::Instant::now(), b.clone()));
            b
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

pub(crate) async fn board_json(
    st: &AppState,
    staff: &Staff,
    date: &Option<String>,
    campus: &Option<String>,
) -> ApiResult<Value> {
    if let Some(c) = campus {
        staff.campus(c)?;
    }
    let (from, to) = day_bounds(st, date.as_deref())?;
    let v: Vec<_> = st
        .store
        .board(from, to)
        .await?
        .into_iter()
        .filter(|l| staff.allows_campus(&l.lesson.campus_id))
        .filter(|l| campus.as_ref().is_none_or(|c| &l.lesson.campus_id == c))
        .collect();
    Ok(json!({"from": from, "to": to, "lessons": v}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Checkin {
    /// Student id (manual) — or `code` from a QR code / card (`rollcall:<student>`).
    student_id: Option<String>,
    code: Option<String>,
    at: Option<DateTime<Utc>>,
    /// Idempotency key of the event (e.g. the card reader's event id).
    event_key: Option<String>,
}

async fn checkin(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(c): JsonBody<Checkin>,
) -> ApiResult<Json<Value>> {
    let (student, source) = match (&c.student_id, &c.code) {
        (Some(s), None) => (s.clone(), AttendanceSource::Manual),
        (None, Some(code)) => (
            code.strip_prefix("rollcall:")
                .ok_or_else(|| ApiError::invalid("code: expected rollcall:<student id>"))?
                .to_string(),
            AttendanceSource::Qr,
        ),
        _ => return Err(ApiError::invalid("give exactly one of student_id and code")),
    };
    student_in_scope(&st, &staff, &student).await?;
    let at = c.at.unwrap_or_else(Utc::now);
    if (at - Utc::now()).num_minutes().abs() > 24 * 60 {
        return Err(ApiError::invalid("at: within a day of now"));
    }
    let mut ci = CheckIn::new(&student, at, source);
    ci.event_key = c.event_key.map(|k| format!("{}:{k}", source.as_str()));
    let r = run(&staff, st.store.check_in(&ci)).await?;
    Ok(Json(json!({"check_in": r})))
}

// -------------------------------------------------------------------------------------------
// review
// -------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct StateQuery {
    state: Option<String>,
    limit: Option<i64>,
}

pub(crate) async fn review_list(
    st: &AppState,
    staff: &Staff,
    state: Option<&str>,
    limit: i64,
) -> ApiResult<Vec<rollcall_ledger::ReviewItem>> {
    let state = match state {
        None => None,
        Some(s) => Some(ReviewState::parse(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "state {s:?}: expected pending, approved, rejected or reassigned"
            ))
        })?),
    };
    let mut items: Vec<_> = st
        .store
        .review_items(state, limit.clamp(1, 500))
        .await?
        .into_iter()
        .filter(|i| staff.allows_campus(&i.campus_id))
        .collect();
    scope_candidates(st, staff, &mut items).await?;
    Ok(items)
}

/// For an account limited to campuses: drops the candidates (students, with their scores) who
/// belong to none of its campuses, so a review item never names another campus's child.
pub(crate) async fn scope_candidates(
    st: &AppState,
    staff: &Staff,
    items: &mut [rollcall_ledger::ReviewItem],
) -> ApiResult<()> {
    if staff.is_all_campuses() || items.iter().all(|i| i.candidates.is_empty()) {
        return Ok(());
    }
    let students = st.store.students().await?;
    let visible = |id: &str| {
        students
            .iter()
            .any(|s| s.id == id && s.campuses.iter().any(|c| staff.allows_campus(c)))
    };
    for i in items.iter_mut() {
        i.candidates.retain(|c| visible(&c.student_id));
    }
    Ok(())
}

async fn list_review(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<StateQuery>,
) -> ApiResult<Json<Value>> {
    let v = review_list(&st, &staff, q.state.as_deref(), q.limit.unwrap_or(100)).await?;
    Ok(Json(json!({"items": v})))
}

async fn review_in_scope(
    st: &AppState,
    staff: &Staff,
    id: &str,
) -> ApiResult<rollcall_ledger::ReviewItem> {
    let item = st.store.review_item(parse_id(id)?).await?;
    staff.campus(&item.campus_id)?;
    let mut one = [item];
    scope_candidates(st, staff, &mut one).await?;
    let [item] = one;
    Ok(item)
}

async fn get_review(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"item": review_in_scope(&st, &staff, &id).await?}),
    ))
}

async fn review_crop(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let item = review_in_scope(&st, &staff, &id).await?;
    let rel = item
        .crop_path
        .ok_or_else(|| ApiError::not_found("this item has no crop"))?;
    // stored paths are relative to the data directory and must stay under crops/review
    let rel_path = std::path::Path::new(&rel);
    let ok = rel_path.starts_with("crops/review")
        && rel_path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !ok {
        return Err(ApiError::not_found("crop path is not under crops/review"));
    }
    let bytes = tokio::fs::read(st.config.data_dir.join(rel_path))
        .await
        .map_err(|_| ApiError::not_found("the crop was deleted (retention) or is missing"))?;
    Ok(jpeg(bytes))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decide {
    pub decision: ReviewDecision,
    pub student_id: Option<String>,
}

pub(crate) async fn decide_review(
    st: &AppState,
    staff: &Staff,
    id: &str,
    d: &Decide,
) -> ApiResult<Value> {
    let item = review_in_scope(st, staff, id).await?;
    if let Some(s) = &d.student_id {
        if d.decision == ReviewDecision::Reassign {
            student_in_scope(st, staff, s).await?;
        }
    }
    let user = staff.account.username.clone();
    let out = run(
        staff,
        st.store
            .decide_review(item.id, d.decision, d.student_id.as_deref(), &user),
    )
    .await?;
    Ok(json!(out))
}

async fn decide(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(d): JsonBody<Decide>,
) -> ApiResult<Json<Value>> {
    Ok(Json(decide_review(&st, &staff, &id, &d).await?))
}

// -------------------------------------------------------------------------------------------
// alerts, cameras
// -------------------------------------------------------------------------------------------

/// Campuses an alert concerns (class, camera, or the student's campuses).
async fn alert_campuses(st: &AppState, a: &rollcall_ledger::AlertView) -> ApiResult<Vec<String>> {
    if let Some(c) = &a.class_id {
        return Ok(st.store.class_campus(c).await?.into_iter().collect());
    }
    if a.student_id.is_empty() {
        // camera alerts: "camera {id}: …"
        let cams = st.store.cameras().await?;
        return Ok(cams
            .into_iter()
            .filter(|c| a.message.starts_with(&format!("camera {}:", c.id)))
            .map(|c| c.campus_id)
            .collect());
    }
    Ok(st.store.student_campuses(&a.student_id).await?)
}

pub(crate) async fn alerts_for(
    st: &AppState,
    staff: &Staff,
    state: Option<&str>,
) -> ApiResult<Vec<rollcall_ledger::AlertView>> {
    let state = match state {
        None => None,
        Some(s) => Some(AlertState::parse(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "state {s:?}: expected open, acknowledged or resolved"
            ))
        })?),
    };
    let mut out = Vec::new();
    for a in st.store.alerts(state).await? {
        if staff.is_all_campuses() || staff.any_campus(&alert_campuses(st, &a).await?).is_ok() {
            out.push(a);
        }
    }
    Ok(out)
}

async fn list_alerts(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<StateQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"alerts": alerts_for(&st, &staff, q.state.as_deref()).await?}),
    ))
}

pub(crate) async fn set_alert(
    st: &AppState,
    staff: &Staff,
    id: &str,
    to: AlertState,
) -> ApiResult<Value> {
    let id = parse_id(id)?;
    let a = st
        .store
        .alerts(None)
        .await?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| ApiError::not_found(format!("unknown alert {id}")))?;
    staff.any_campus(&alert_campuses(st, &a).await?)?;
    if a.state == AlertState::Resolved {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("alert {id} is already resolved"),
        ));
    }
    let user = staff.account.username.clone();
    run(staff, st.store.set_alert_state(id, to, &user)).await?;
    Ok(json!({"id": id, "before": a.state, "state": to}))
}

async fn ack_alert(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        set_alert(&st, &staff, &id, AlertState::Acknowledged).await?,
    ))
}

async fn resolve_alert(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        set_alert(&st, &staff, &id, AlertState::Resolved).await?,
    ))
}

pub(crate) async fn cameras_json(st: &AppState, staff: &Staff) -> ApiResult<Value> {
    let states = st.ops.camera_states();
    let v: Vec<_> = st
        .store
        .cameras()
        .await?
        .into_iter()
        .filter(|c| staff.allows_campus(&c.campus_id))
        .map(|c| {
            let state = states
                .get(&c.id)
                .cloned()
                .unwrap_or_else(|| "unknown".into());
            json!({"id": c.id, "campus_id": c.campus_id, "door": c.door, "state": state})
        })
        .collect();
    Ok(json!({"cameras": v}))
}

async fn cameras(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
) -> ApiResult<Json<Value>> {
    Ok(Json(cameras_json(&st, &staff).await?))
}

// -------------------------------------------------------------------------------------------
// reports, import/export
// -------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Range {
    from: Option<String>,
    to: Option<String>,
}

fn range(st: &AppState, r: &Range) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let (today, _) = day_bounds(st, None)?;
    let from = match &r.from {
        Some(d) => day_bounds(st, Some(d))?.0,
        None => today - Duration::days(30),
    };
    let to = match &r.to {
        Some(d) => day_bounds(st, Some(d))?.1,
        None => today + Duration::days(1),
    };
    if to <= from || to - from > Duration::days(400) {
        return Err(ApiError::invalid(
            "from..to: up to 400 days, from before to",
        ));
    }
    Ok((from, to))
}

pub(crate) async fn attendance_report(
    st: &AppState,
    staff: &Staff,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<Value> {
    let mut rep = st.store.report_attendance(from, to).await?;
    if !staff.is_all_campuses() {
        let classes = st.store.classes().await?;
        let students = st.store.students().await?;
        rep.per_class.retain(|r| {
            classes
                .iter()
                .any(|c| c.id == r.key && staff.allows_campus(&c.campus_id))
        });
        rep.per_student.retain(|r| {
            students
                .iter()
                .any(|s| s.id == r.key && s.campuses.iter().any(|c| staff.allows_campus(c)))
        });
    }
    Ok(json!(rep))
}

async fn report_attendance(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(r): Query<Range>,
) -> ApiResult<Json<Value>> {
    let (from, to) = range(&st, &r)?;
    Ok(Json(attendance_report(&st, &staff, from, to).await?))
}

pub(crate) async fn heatmap(
    st: &AppState,
    staff: &Staff,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<Vec<rollcall_ledger::HeatCell>> {
    Ok(st
        .store
        .report_heatmap(from, to)
        .await?
        .into_iter()
        .filter(|c| staff.allows_campus(&c.campus_id))
        .collect())
}

async fn report_heatmap(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(r): Query<Range>,
) -> ApiResult<Json<Value>> {
    let (from, to) = range(&st, &r)?;
    Ok(Json(
        json!({"from": from, "to": to, "cells": heatmap(&st, &staff, from, to).await?}),
    ))
}

async fn report_outstanding(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
) -> ApiResult<Json<Value>> {
    let mut rows = st.store.report_outstanding(Utc::now()).await?;
    if !staff.is_all_campuses() {
        let students = st.store.students().await?;
        rows.retain(|r| {
            students
                .iter()
                .any(|s| s.id == r.student_id && s.campuses.iter().any(|c| staff.allows_campus(c)))
        });
    }
    Ok(Json(json!({"outstanding": rows})))
}

async fn import(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    crate::RawBody(body): crate::RawBody,
) -> ApiResult<Json<Value>> {
    crate::require_type(&headers, &["text/csv"])?;
    if !staff.is_all_campuses() {
        // an import can touch any campus: only accounts scoped to every campus
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_campus",
            "CSV import needs an account scoped to every campus",
        ));
    }
    let kind: rollcall_ledger::ImportKind = kind.parse()?;
    let summary = run(&staff, st.store.import_csv(kind, &body[..])).await?;
    Ok(Json(json!({"imported": summary})))
}

fn csv_field(s: &str) -> String {
    // quote, and neutralise spreadsheet formulas
    // a leading tab or carriage return is skipped by spreadsheets before they read a formula
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn csv_response(name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

async fn export_students(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
) -> ApiResult<Response> {
    let mut out = String::from("id,name,home_campus\n");
    for s in st.store.students().await? {
        if staff.is_all_campuses() || s.campuses.iter().any(|c| staff.allows_campus(c)) {
            out += &format!(
                "{},{},{}\n",
                csv_field(&s.id),
                csv_field(&s.name),
                csv_field(s.home_campus_id.as_deref().unwrap_or(""))
            );
        }
    }
    Ok(csv_response("students.csv", out))
}

async fn export_ledger(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
) -> ApiResult<Response> {
    let students = st.store.students().await?;
    let visible = |id: &str| {
        staff.is_all_campuses()
            || students
                .iter()
                .any(|s| s.id == id && s.campuses.iter().any(|c| staff.allows_campus(c)))
    };
    let mut out =
        String::from("seq,at,student_id,kind,package_id,lesson_id,units,amount_cents,actor,note\n");
    for e in st.store.entries(None).await? {
        if !visible(&e.entry.student_id) {
            continue;
        }
        out += &format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            e.seq,
            e.at.to_rfc3339(),
            csv_field(&e.entry.student_id),
            e.entry.kind.as_str(),
            csv_field(e.entry.package_id.as_deref().unwrap_or("")),
            csv_field(e.entry.lesson_id.as_deref().unwrap_or("")),
            e.entry.units,
            e.entry.amount_cents,
            csv_field(&e.actor),
            csv_field(e.note.as_deref().unwrap_or(""))
        );
    }
    Ok(csv_response("ledger.csv", out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_neutralise_formulas() {
        for f in [
            "=1+1",
            "+1",
            "-1",
            "@SUM(A1)",
            "\t=cmd|' /C calc'!A0",
            "\r=1+1",
        ] {
            assert!(csv_field(f).starts_with("\"'"), "{f:?}: {}", csv_field(f));
        }
        assert_eq!(csv_field("Ann \"Li\""), "\"Ann \"\"Li\"\"\"");
        assert_eq!(csv_field("s1"), "\"s1\"");
    }
}
