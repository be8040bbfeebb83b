//! The staff web app under `/app`: server-rendered HTML, tablet-friendly CSS, English and
//! Chinese (`?lang=zh` / `?lang=en`, remembered in a `lang` cookie). Forms carry the session's
//! CSRF token in `_csrf`; the only JavaScript is the enrollment page's live upload feedback.

use crate::auth::{self, roles, Staff};
use crate::error::ApiError;
use crate::openapi::esc;
use crate::v1::{self, Decide, Login};
use crate::{AppState, Routes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form};
use chrono::{DateTime, Duration, FixedOffset, Utc};
use rollcall_domain::ledger::AlertState;
use rollcall_ledger::{ReviewDecision, Role};
use serde::Deserialize;
use std::collections::BTreeMap;

pub(crate) fn mount(r: Routes) -> Routes {
    r.add(
        "GET",
        "/app/login",
        "web",
        None,
        "login page",
        get(login_page),
    )
    .add(
        "POST",
        "/app/login",
        "web",
        None,
        "login form",
        post(login_form),
    )
    .web("POST", "/app/logout", roles::ANY, "log out", post(logout))
    .web(
        "GET",
        "/app",
        roles::ANY,
        "today's attendance board",
        get(board_page),
    )
    .web(
        "GET",
        "/app/review",
        roles::ANY,
        "review queue",
        get(review_page),
    )
    .web(
        "POST",
        "/app/review/{id}",
        roles::REVIEW,
        "decide a review item (form)",
        post(review_form),
    )
    .web(
        "GET",
        "/app/students",
        roles::ANY,
        "students",
        get(students_page),
    )
    .web(
        "GET",
        "/app/students/{id}",
        roles::ANY,
        "student: balance, packages, ledger",
        get(student_page),
    )
    .web("GET", "/app/alerts", roles::ANY, "alerts", get(alerts_page))
    .web(
        "POST",
        "/app/alerts/{id}",
        roles::ALERTS,
        "acknowledge/resolve an alert (form)",
        post(alert_form),
    )
    .web(
        "GET",
        "/app/cameras",
        roles::ANY,
        "camera health",
        get(cameras_page),
    )
    .web(
        "GET",
        "/app/privacy",
        roles::ANY,
        "what biometric data is kept, and for how long",
        get(privacy_page),
    )
    .web(
        "GET",
        "/app/reports",
        roles::ANY,
        "attendance rates and heat map",
        get(reports_page),
    )
    .web(
        "GET",
        "/app/enroll",
        roles::ENROLL,
        "enrollment with live quality feedback",
        get(enroll_page),
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
        return (
            StatusCode::FORBIDDEN,
            Html(page(
                lang,
                &staff,
                "403",
                &format!("<p class=err>{}</p>", t(lang, "forbidden")),
            )),
        )
            .into_response();
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
    let mut resp = friendly_error(resp, lang, &staff).await;
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

/// An error of a page or form (the API's JSON error) as a page a person can read: what went
/// wrong in their language, the server's detail in English, and the way back to the board.
async fn friendly_error(resp: Response, lang: Lang, staff: &Staff) -> Response {
    let status = resp.status();
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || !json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let detail = axum::body::to_bytes(body, 64 * 1024)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_default();
    let key = match status {
        StatusCode::NOT_FOUND => "err_not_found",
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => "err_invalid",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::CONFLICT => "err_conflict",
        s if s.is_server_error() => "err_server",
        _ => "err_other",
    };
    let detail = if lang == Lang::En && !detail.is_empty() {
        format!("<p>{}</p>", esc(&detail))
    } else {
        String::new()
    };
    let body = format!(
        "<div class=card id=error><p class=err>{}</p>{detail}<p><a href=/app>{}</a></p></div>",
        t(lang, key),
        t(lang, "back_to_board")
    );
    let mut out = Html(page(lang, staff, t(lang, "error_title"), &body)).into_response();
    *out.status_mut() = parts.status;
    out
}

/// A page under `/app` that does not exist, for anyone (no session needed): in both
/// languages, with the way back.
pub(crate) fn unknown_app_page() -> Response {
    let body = format!(
        "<!doctype html><html lang=zh-CN><head><meta charset=utf-8><title>404 · rollcall</title><style>{CSS}</style></head>\
<body><main><div class=card id=error><p class=err>{}</p><p class=err>{}</p><p><a href=/app>{}</a> · <a href=/app>{}</a></p></div></main></body></html>",
        t(Lang::Zh, "err_no_page"),
        t(Lang::En, "err_no_page"),
        t(Lang::Zh, "back_to_board"),
        t(Lang::En, "back_to_board"),
    );
    (StatusCode::NOT_FOUND, Html(body)).into_response()
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
}

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

/// UI strings.
pub(crate) fn t(lang: Lang, key: &str) -> &'static str {
    let (en, zh) = match key {
        "board" => ("Attendance", "考勤看板"),
        "review" => ("Review queue", "待审核"),
        "students" => ("Students", "学员"),
        "alerts" => ("Alerts", "提醒"),
        "cameras" => ("Cameras", "摄像头"),
        "privacy" => ("Privacy", "隐私"),
        "reports" => ("Reports", "报表"),
        "enroll" => ("Enroll", "录入人脸"),
        "logout" => ("Log out", "退出"),
        "login" => ("Log in", "登录"),
        "username" => ("Username", "用户名"),
        "password" => ("Password", "密码"),
        "present" => ("present", "已到"),
        "late" => ("late", "迟到"),
        "absent" => ("absent", "缺勤"),
        "excused" => ("excused", "请假"),
        "left_early" => ("left early", "早退"),
        "not_yet" => ("not yet", "未到"),
        "approve" => ("Approve", "确认"),
        "reject" => ("Reject", "不是学员"),
        "reassign" => ("Reassign to", "改为"),
        "no_items" => ("Nothing to review.", "没有待审核的记录。"),
        "no_lessons" => ("No lessons on this day.", "这一天没有课。"),
        "prev_day" => ("‹ Previous day", "‹ 前一天"),
        "next_day" => ("Next day ›", "后一天 ›"),
        "today" => ("Today", "今天"),
        "show_day" => ("Show", "查看"),
        "captured" => ("captured", "抓拍"),
        "balance" => ("Balance", "剩余课时"),
        "packages" => ("Packages", "课时包"),
        "ledger" => ("Ledger", "流水"),
        "acknowledge" => ("Acknowledge", "知道了"),
        "resolve" => ("Resolve", "已处理"),
        "forbidden" => (
            "Your role or campus may not see this.",
            "您的角色或校区无权查看。",
        ),
        "bad_login" => ("Wrong username or password.", "用户名或密码错误。"),
        "login_expired" => (
            "The login form has expired. Please log in again.",
            "登录表单已过期，请重新登录。",
        ),
        "rate" => ("Attendance rate per class", "各班出勤率"),
        "heat" => ("Check-ins by weekday and hour", "按星期与小时的签到"),
        "student" => ("Student id", "学员编号"),
        "photo" => ("Photo", "照片"),
        "upload" => ("Check and enroll", "检测并录入"),
        "convert_photo" => (
            "HEIC and AVIF photos are not supported: export the photo as JPEG or WebP and upload it again (on an iPhone: Settings › Camera › Formats › Most Compatible).",
            "不支持 HEIC 和 AVIF 格式的照片：请将照片导出为 JPEG 或 WebP 格式后重新上传（iPhone：设置 › 相机 › 格式 › 兼容性最佳）。",
        ),
        "state" => ("State", "状态"),
        "error_title" => ("Something is not right", "出了点问题"),
        "range_from" => ("From", "从"),
        "range_to" => ("to", "到"),
        "confirm_reject" => (
            "Reject: nobody is checked in for this sighting. Continue?",
            "拒绝：此次抓拍不会为任何人签到。确定吗？",
        ),
        "done_checked_in" => ("{student} was checked in to lesson {lesson}.", "{student} 已签到，课程 {lesson}。"),
        "done_decided" => ("Decided: nobody was checked in.", "已处理：没有人被签到。"),
        "absence_streak" => ("Absent several lessons in a row", "连续缺课"),
        "low_balance" => ("Few lessons left", "课时不足"),
        "expiring_package" => ("Package about to expire", "课时包即将到期"),
        "zero_balance_checkin" => (
            "Checked in without lessons left",
            "无剩余课时仍签到",
        ),
        "camera_offline" => ("Camera offline", "摄像头离线"),
        "check_in_failed" => ("Check-in could not be recorded", "签到未能记录"),
        "open" => ("open", "未处理"),
        "acknowledged" => ("acknowledged", "已知悉"),
        "resolved" => ("resolved", "已处理"),
        "purchase" => ("purchase", "购买"),
        "deduction" => ("lesson used", "扣课"),
        "reversal" => ("reversal", "冲正"),
        "refund" => ("refund", "退费"),
        "adjustment" => ("adjustment", "调整"),
        "err_not_found" => (
            "Not found: no such student, lesson or item (it may have been removed, or the address is mistyped).",
            "找不到：没有这个学员、课程或条目（可能已被删除，或地址有误）。",
        ),
        "err_invalid" => (
            "Some of what was entered is not valid. Please check it and try again.",
            "输入的内容有误，请检查后重试。",
        ),
        "err_conflict" => (
            "Someone else changed this in the meantime. Reload the page to see the current state.",
            "此内容已被他人修改，请刷新页面查看最新状态。",
        ),
        "err_server" => (
            "The server could not do this just now. Please try again in a moment; the problem has been logged.",
            "服务器暂时无法完成此操作，请稍后重试；问题已记录。",
        ),
        "err_other" => ("This could not be done.", "无法完成此操作。"),
        "err_no_page" => ("There is no such page.", "没有这个页面。"),
        "back_to_board" => ("Back to the attendance board", "返回考勤看板"),
        _ => ("?", "?"),
    };
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

const CSS: &str = "body{font-family:system-ui,'PingFang SC','Noto Sans CJK SC',sans-serif;margin:0;background:#f6f7f9;color:#222;font-size:17px}\
nav{display:flex;flex-wrap:wrap;gap:.2em;background:#234;padding:.4em}nav a{color:#fff;text-decoration:none;padding:.6em .8em;border-radius:6px}nav a:hover{background:#456}\
main{padding:1em;max-width:1100px;margin:auto}.card{background:#fff;border-radius:10px;padding:1em;margin:.7em 0;box-shadow:0 1px 3px #0002}\
.chips{display:flex;flex-wrap:wrap;gap:.4em}.chip{padding:.5em .8em;border-radius:20px;background:#eee;min-width:6em}\
.present{background:#c8f0c8}.late{background:#fde7a9}.absent{background:#f6c1c1}.excused{background:#d8e4fb}.left_early{background:#f3d6f3}.not_yet{background:#eee}\
button,input,select{font-size:1em;padding:.6em .9em;border-radius:8px;border:1px solid #aaa;margin:.2em}button{background:#2a6;color:#fff;border:0;min-height:44px}button.no{background:#b33}button.alt{background:#46a}\
img.face{width:140px;height:140px;object-fit:cover;border-radius:8px;background:#ddd}.row{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4em;text-align:left}.err{color:#b33}.ok{color:#262}.bar{background:#2a6;height:1em;border-radius:4px}";

fn page(lang: Lang, staff: &Staff, title: &str, body: &str) -> String {
    page_keeping(lang, staff, title, body, "")
}

/// [`page`] whose language links keep the page's own query (`keep`, already URL-safe, e.g.
/// `date=2026-03-02`), so switching the language stays on the same day.
fn page_keeping(lang: Lang, staff: &Staff, title: &str, body: &str, keep: &str) -> String {
    let keep = if keep.is_empty() {
        String::new()
    } else {
        format!("{keep}&")
    };
    let nav: String = [
        ("/app", "board"),
        ("/app/review", "review"),
        ("/app/students", "students"),
        ("/app/alerts", "alerts"),
        ("/app/cameras", "cameras"),
        ("/app/reports", "reports"),
        ("/app/enroll", "enroll"),
        ("/app/privacy", "privacy"),
    ]
    .iter()
    .filter(|(href, _)| *href != "/app/enroll" || staff.require(roles::ENROLL).is_ok())
    .map(|(href, k)| format!("<a href={href}>{}</a>", t(lang, k)))
    .collect();
    let csrf = esc(staff.csrf.as_deref().unwrap_or(""));
    format!(
        "<!doctype html><html lang={}><head><meta charset=utf-8><meta name=viewport content='width=device-width,initial-scale=1'>\
<meta name=csrf content=\"{csrf}\"><title>{} · rollcall</title><style>{CSS}</style></head><body><nav>{nav}\
<a href='?{keep}lang=en'>EN</a><a href='?{keep}lang=zh'>中文</a>\
<form method=post action=/app/logout style=margin-left:auto><input type=hidden name=_csrf value=\"{csrf}\"><button class=alt>{} ({})</button></form></nav><main><h1>{}</h1>{body}</main></body></html>",
        if lang == Lang::Zh { "zh-CN" } else { "en" },
        esc(title),
        t(lang, "logout"),
        esc(&staff.account.username),
        esc(title),
    )
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

// -------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct LangQ {
    lang: Option<String>,
    error: Option<String>,
}

/// The cookie holding the login form's CSRF token (double submit: the form carries the same
/// value in `_csrf`). A page of another site can post to `/app/login` but can neither read
/// nor set this cookie, so it cannot log a tablet into its own account.
const LOGIN_CSRF_COOKIE: &str = "rollcall_login_csrf";

/// A fresh login-form token and the `Set-Cookie` value that goes with it.
fn login_csrf(st: &AppState) -> (String, String) {
    let tok = auth::new_token("");
    let cookie = format!(
        "{LOGIN_CSRF_COOKIE}={tok}; Path=/app/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        if st.config.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    (tok, cookie)
}

/// The login page (`status`) with `err` (HTML) above the form and a fresh form token.
fn login_response(st: &AppState, status: StatusCode, lang: Lang, err: &str) -> Response {
    let (tok, cookie) = login_csrf(st);
    (
        status,
        [
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Html(login_html(lang, err, &tok)),
    )
        .into_response()
}

async fn login_page(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQ>,
) -> Response {
    let lang = lang_of(
        &headers,
        q.lang.as_deref().map(|l| format!("lang={l}")).as_deref(),
    );
    let err = if q.error.is_some() {
        format!("<p class=err>{}</p>", t(lang, "bad_login"))
    } else {
        String::new()
    };
    login_response(&st, StatusCode::OK, lang, &err)
}

/// The login page with `err` (HTML) above the form and `csrf` in it.
fn login_html(lang: Lang, err: &str, csrf: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=utf-8><meta name=viewport content='width=device-width,initial-scale=1'><title>rollcall</title><style>{CSS}</style></head>\
<body><main><div class=card><h1>rollcall</h1>{err}<form method=post action=/app/login><input type=hidden name=_csrf value=\"{}\">\
<p><label>{}<br><input id=username name=username autocomplete=username required></label></p>\
<p><label>{}<br><input id=password name=password type=password autocomplete=current-password required></label></p>\
<button id=login>{}</button></form><p><a href='?lang=en'>EN</a> · <a href='?lang=zh'>中文</a></p></div></main></body></html>",
        esc(csrf),
        t(lang, "username"),
        t(lang, "password"),
        t(lang, "login")
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    _csrf: String,
}

async fn login_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    auth::ClientIp(ip): auth::ClientIp,
    Form(f): Form<LoginForm>,
) -> Response {
    let lang = lang_of(&headers, None);
    let expected = auth::cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !auth::constant_eq(expected.as_bytes(), f._csrf.as_bytes()) {
        // not posted from our own login page: nothing checked, nothing counted
        return login_response(
            &st,
            StatusCode::FORBIDDEN,
            lang,
            &format!("<p class=err id=csrf>{}</p>", t(lang, "login_expired")),
        );
    }
    let l = Login {
        username: f.username,
        password: f.password,
    };
    match v1::open_session(&st, &l, ip).await {
        Ok((cookie, _, _)) => {
            let mut r = ([(header::SET_COOKIE, cookie)], Redirect::to("/app")).into_response();
            if let Ok(v) = format!("{LOGIN_CSRF_COOKIE}=; Path=/app/login; Max-Age=0").parse() {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            Redirect::to("/app/login?error=1").into_response()
        }
        Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
            // throttled: the login page again, with the wait, as a 429 with Retry-After
            let wait = e.retry_after.unwrap_or(60);
            let msg = match lang {
                Lang::En => format!(
                    "Too many failed logins for this account or from this device. Try again in {}.",
                    v1::wait_words(wait, false)
                ),
                Lang::Zh => format!(
                    "该账号或本设备登录失败次数过多，请 {}后再试。",
                    v1::wait_words(wait, true)
                ),
            };
            let mut r = login_response(
                &st,
                StatusCode::TOO_MANY_REQUESTS,
                lang,
                &format!("<p class=err id=throttled>{}</p>", esc(&msg)),
            );
            r.headers_mut().insert(header::RETRY_AFTER, wait.into());
            r
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    _csrf: String,
}

async fn logout(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    if let Some(h) = &staff.session_hash {
        st.cache.forget(&format!("s:{h}"));
        rollcall_ledger::as_actor(staff.actor(), st.store.end_session(h)).await?;
    }
    Ok((
        [(
            header::SET_COOKIE,
            format!(
                "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
                auth::SESSION_COOKIE
            ),
        )],
        Redirect::to("/app/login"),
    )
        .into_response())
}

#[derive(Deserialize)]
struct BoardQ {
    date: Option<String>,
    campus: Option<String>,
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

async fn board_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Query(q): Query<BoardQ>,
) -> Result<Html<String>, ApiError> {
    let v = v1::board_json(&st, &staff, &q.date, &q.campus).await?;
    // the day shown (board_json has checked a given date), with the days around it
    let day = q
        .date
        .as_deref()
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .unwrap_or_else(|| local(&st, Utc::now()).date_naive());
    let campus = q
        .campus
        .as_deref()
        .filter(|c| {
            c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        })
        .map(|c| format!("&campus={c}"))
        .unwrap_or_default();
    let keep = format!("date={day}{campus}");
    let mut body = format!(
        "<meta http-equiv=refresh content=15><div class=card id=days><a href='/app?date={prev}{campus}'>{}</a> \
<form method=get action=/app style=display:inline><input type=date name=date value={day}><button class=alt>{}</button></form> \
<a href='/app'>{}</a> <a href='/app?date={next}{campus}'>{}</a></div>",
        t(lang, "prev_day"),
        t(lang, "show_day"),
        t(lang, "today"),
        t(lang, "next_day"),
        prev = day.pred_opt().unwrap_or(day),
        next = day.succ_opt().unwrap_or(day),
    );
    let lessons = v["lessons"].as_array().cloned().unwrap_or_default();
    if lessons.is_empty() {
        body += &format!("<p>{}</p>", t(lang, "no_lessons"));
    }
    for l in &lessons {
        let start = l["start"].as_str().unwrap_or("");
        let end = l["end"].as_str().unwrap_or("");
        let counts: BTreeMap<String, u64> =
            serde_json::from_value(l["counts"].clone()).unwrap_or_default();
        let summary: Vec<String> = counts
            .iter()
            .map(|(k, n)| format!("{} {n}", t(lang, k)))
            .collect();
        body += &format!(
            "<div class=card data-lesson=\"{}\"><h2>{} · {} · {}–{}</h2><p>{}</p><div class=chips>",
            esc(l["id"].as_str().unwrap_or("")),
            esc(l["class_name"].as_str().unwrap_or("")),
            esc(l["campus_id"].as_str().unwrap_or("")),
            esc(&local_hm(&st, start)),
            esc(&local_hm(&st, end)),
            esc(&summary.join(" · "))
        );
        for s in l["students"].as_array().cloned().unwrap_or_default() {
            let status = s["status"].as_str().unwrap_or("not_yet");
            body += &format!(
                "<a class='chip {}' data-student=\"{}\" data-status=\"{}\" href=\"/app/students/{}\">{} · {}</a>",
                esc(status),
                esc(s["student_id"].as_str().unwrap_or("")),
                esc(status),
                esc(s["student_id"].as_str().unwrap_or("")),
                esc(s["name"].as_str().unwrap_or("")),
                t(lang, status)
            );
        }
        body += "</div></div>";
    }
    Ok(Html(page_keeping(
        lang,
        &staff,
        t(lang, "board"),
        &body,
        &keep,
    )))
}

async fn review_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Query(q): Query<DoneQ>,
) -> Result<Html<String>, ApiError> {
    let items = v1::review_list(&st, &staff, Some("pending"), 100).await?;
    let csrf = esc(staff.csrf.as_deref().unwrap_or(""));
    // the queue is readable by every role; its buttons are shown to those who may decide
    let decides = staff.require(roles::REVIEW).is_ok();
    // candidates by name (the id beside it), as a person knows them
    let students = st.store.students().await?;
    let names: BTreeMap<String, String> = students
        .iter()
        .map(|s| (s.id.clone(), s.name.clone()))
        .collect();
    // the reassign field's searchable list: the students of the reviewer's campuses
    let picker: String = students
        .iter()
        .filter(|s| staff.is_all_campuses() || s.campuses.iter().any(|c| staff.allows_campus(c)))
        .map(|s| format!("<option value=\"{}\">{}</option>", esc(&s.id), esc(&s.name)))
        .collect();
    let who = |id: &str| match names.get(id) {
        Some(n) => format!("{} <small>{}</small>", esc(n), esc(id)),
        None => esc(id),
    };
    let mut body = String::new();
    match (q.done.as_deref(), &q.student) {
        (Some("checked_in"), Some(s)) => {
            let name = names.get(s).cloned().unwrap_or_else(|| s.clone());
            let lesson = q.lesson.clone().unwrap_or_default();
            body += &format!(
                "<p class='card ok' id=done>{}</p>",
                esc(&t(lang, "done_checked_in")
                    .replace("{student}", &name)
                    .replace("{lesson}", &lesson))
            );
        }
        (Some(_), _) => {
            body += &format!("<p class='card ok' id=done>{}</p>", t(lang, "done_decided"));
        }
        _ => {}
    }
    if items.is_empty() {
        body += &format!("<p id=empty>{}</p>", t(lang, "no_items"));
    }
    for i in &items {
        body += &format!(
            "<div class=card id=review-{id}><div class=row><figure><img class=face src=/api/v1/review/{id}/crop alt=crop><figcaption>{} · {} · {}</figcaption></figure>",
            t(lang, "captured"),
            esc(i.camera_id.as_deref().unwrap_or("")),
            esc(&local(&st, i.seen_at).format("%H:%M:%S").to_string()),
            id = i.id
        );
        if !decides {
            for c in &i.candidates {
                body += &format!(
                    "<figure><img class=face src=\"/api/v1/students/{sid}/photo\" alt=\"{sid}\"><figcaption>{} · {:.2}</figcaption></figure>",
                    who(&c.student_id),
                    c.score,
                    sid = esc(&c.student_id),
                );
            }
            body += "</div></div>";
            continue;
        }
        for c in &i.candidates {
            body += &format!(
                "<figure><img class=face src=\"/api/v1/students/{sid}/photo\" alt=\"{sid}\"><figcaption>{} · {:.2}\
<form method=post action=/app/review/{id}><input type=hidden name=_csrf value=\"{csrf}\"><input type=hidden name=decision value=approve>\
<input type=hidden name=student_id value=\"{sid}\"><button class=approve>{}</button></form></figcaption></figure>",
                who(&c.student_id),
                c.score,
                t(lang, "approve"),
                sid = esc(&c.student_id),
                id = i.id
            );
        }
        body += &format!(
            "</div><form method=post action=/app/review/{id} onsubmit=\"return confirm('{}')\"><input type=hidden name=_csrf value=\"{csrf}\"><input type=hidden name=decision value=reject><button class='no reject'>{}</button></form>\
<form method=post action=/app/review/{id}><input type=hidden name=_csrf value=\"{csrf}\"><input type=hidden name=decision value=reassign>\
<input name=student_id list=students placeholder=\"{}\" required autocomplete=off><button class=alt>{}</button></form></div>",
            t(lang, "confirm_reject"),
            t(lang, "reject"),
            t(lang, "student"),
            t(lang, "reassign"),
            id = i.id
        );
    }
    if decides {
        body += &format!("<datalist id=students>{picker}</datalist>");
    }
    Ok(Html(page(lang, &staff, t(lang, "review"), &body)))
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

#[derive(Deserialize, Default)]
struct DoneQ {
    done: Option<String>,
    student: Option<String>,
    lesson: Option<String>,
}

#[derive(Deserialize)]
struct DecideForm {
    _csrf: String,
    decision: ReviewDecision,
    student_id: Option<String>,
}

async fn review_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Form(f): Form<DecideForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    let d = Decide {
        decision: f.decision,
        student_id: f.student_id.filter(|s| !s.trim().is_empty()),
    };
    // an error goes back as the API's; the web guard turns it into a page in the reader's
    // language
    let v = v1::decide_review(&st, &staff, &id, &d).await?;
    // say what happened on the queue's page: who was checked in to which lesson
    let ci = &v["check_in"];
    let done = match (ci["student_id"].as_str(), ci["lesson_id"].as_str()) {
        (Some(s), Some(l)) => format!("checked_in&student={}&lesson={}", url(s), url(l)),
        (Some(s), None) => format!("checked_in&student={}", url(s)),
        _ => "decided".to_string(),
    };
    Ok(Redirect::to(&format!("/app/review?done={done}")).into_response())
}

async fn students_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
) -> Result<Html<String>, ApiError> {
    let mut body = String::from("<div class=card><table>");
    for s in st.store.students().await? {
        if staff.is_all_campuses() || s.campuses.iter().any(|c| staff.allows_campus(c)) {
            body += &format!(
                "<tr><td><a href=\"/app/students/{}\">{}</a></td><td>{}</td><td>{}</td></tr>",
                esc(&s.id),
                esc(&s.id),
                esc(&s.name),
                esc(&s.campuses.join(", "))
            );
        }
    }
    body += "</table></div>";
    Ok(Html(page(lang, &staff, t(lang, "students"), &body)))
}

async fn student_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let s = st.store.student(&id).await?;
    if !staff.is_all_campuses() {
        staff.any_campus(&s.campuses)?;
    }
    let b = st.store.balance(&id, Utc::now()).await?;
    let mut body = format!(
        "<div class=card><div class=row><img class=face src=\"/api/v1/students/{}/photo\" alt=''><div><h2>{}</h2><p>{}: <b id=balance>{}</b></p><p>{}</p></div></div></div>",
        esc(&id),
        esc(&s.name),
        t(lang, "balance"),
        esc(&b.available),
        esc(&s.campuses.join(", "))
    );
    // what needs attention about this student (e.g. a check-in approved without lessons
    // left), until it is resolved
    let open: Vec<_> = st
        .store
        .alerts(None)
        .await?
        .into_iter()
        .filter(|a| a.student_id == id && a.state != AlertState::Resolved)
        .collect();
    if !open.is_empty() {
        body += &format!(
            "<div class=card id=student-alerts><h2>{}</h2><table>",
            t(lang, "alerts")
        );
        for a in &open {
            body += &format!(
                "<tr><td>{}</td><td class=err>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&local(&st, a.created_at)
                    .format("%Y-%m-%d %H:%M")
                    .to_string()),
                t(lang, a.kind.as_str()),
                esc(&a.message),
                t(lang, a.state.as_str()),
            );
        }
        body += "</table></div>";
    }
    body += &format!("<div class=card><h2>{}</h2><table>", t(lang, "packages"));
    for p in &b.packages {
        body += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.package.package_id),
            esc(&p.balance),
            esc(&local(&st, p.package.expires_at)
                .format("%Y-%m-%d")
                .to_string()),
            if p.expired { "expired" } else { "" }
        );
    }
    body += &format!(
        "</table></div><div class=card><h2>{}</h2><table>",
        t(lang, "ledger")
    );
    for e in st.store.entries(Some(&id)).await?.iter().rev() {
        body += &format!(
            "<tr><td>{}</td><td>{}</td><td>{:+.2}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&local(&st, e.at).format("%Y-%m-%d %H:%M").to_string()),
            t(lang, e.entry.kind.as_str()),
            e.entry.units as f64 / 100.0,
            esc(e.entry.lesson_id.as_deref().unwrap_or("")),
            esc(&e.actor),
            esc(e.note.as_deref().unwrap_or(""))
        );
    }
    body += "</table></div>";
    Ok(Html(page(lang, &staff, &s.name, &body)))
}

async fn alerts_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
) -> Result<Html<String>, ApiError> {
    let csrf = esc(staff.csrf.as_deref().unwrap_or(""));
    let acts = staff.require(roles::ALERTS).is_ok();
    let mut body = String::from("<div class=card><table>");
    for a in v1::alerts_for(&st, &staff, None).await? {
        if a.state == AlertState::Resolved {
            continue;
        }
        if !acts {
            body += &format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&local(&st, a.created_at).format("%m-%d %H:%M").to_string()),
                t(lang, a.kind.as_str()),
                esc(&a.message),
                t(lang, a.state.as_str()),
            );
            continue;
        }
        body += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><form method=post action=/app/alerts/{id}><input type=hidden name=_csrf value=\"{csrf}\">\
<button name=action value=acknowledge class=alt>{}</button><button name=action value=resolve>{}</button></form></td></tr>",
            esc(&local(&st, a.created_at).format("%m-%d %H:%M").to_string()),
            t(lang, a.kind.as_str()),
            esc(&a.message),
            t(lang, a.state.as_str()),
            t(lang, "acknowledge"),
            t(lang, "resolve"),
            id = a.id
        );
    }
    body += "</table></div>";
    Ok(Html(page(lang, &staff, t(lang, "alerts"), &body)))
}

#[derive(Deserialize)]
struct AlertForm {
    _csrf: String,
    action: String,
}

async fn alert_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Form(f): Form<AlertForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    let to = match f.action.as_str() {
        "acknowledge" => AlertState::Acknowledged,
        "resolve" => AlertState::Resolved,
        _ => return Err(ApiError::invalid("action: acknowledge or resolve")),
    };
    v1::set_alert(&st, &staff, &id, to).await?;
    Ok(Redirect::to("/app/alerts").into_response())
}

async fn cameras_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
) -> Result<Html<String>, ApiError> {
    let v = v1::cameras_json(&st, &staff).await?;
    let mut body = String::from("<meta http-equiv=refresh content=15><div class=card><table>");
    for c in v["cameras"].as_array().cloned().unwrap_or_default() {
        let state = c["state"].as_str().unwrap_or("unknown");
        let class = if state == "online" {
            "present"
        } else {
            "absent"
        };
        body += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><span class='chip {class}'>{}</span></td></tr>",
            esc(c["id"].as_str().unwrap_or("")),
            esc(c["campus_id"].as_str().unwrap_or("")),
            esc(c["door"].as_str().unwrap_or("")),
            esc(state)
        );
    }
    body += "</table></div>";
    Ok(Html(page(lang, &staff, t(lang, "cameras"), &body)))
}

async fn privacy_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
) -> Result<Html<String>, ApiError> {
    let p = st.ops.retention_policy();
    let zh = lang == Lang::Zh;
    let mut body = String::from("<div class=card><table>");
    let rows = [
        (
            "review_crop_days",
            "Face crops of review items waiting for a decision, and of unknown visitors",
            "待审核与陌生访客的人脸截图",
            "days",
            "天",
        ),
        (
            "decided_review_days",
            "Face crops of decided review items",
            "已处理审核项的人脸截图",
            "days after the decision",
            "天（自处理之时起）",
        ),
        (
            "unknown_crop_days",
            "Unknown-visitor crops",
            "陌生访客截图",
            "days",
            "天",
        ),
        (
            "inactive_template_months",
            "Face templates of students with no attendance",
            "无考勤学员的人脸模板",
            "months",
            "个月",
        ),
    ];
    if p.is_null() {
        body += if zh {
            "<tr><td>此进程未运行保留任务。</td></tr>"
        } else {
            "<tr><td>No retention job runs in this process.</td></tr>"
        };
    } else {
        for (k, en, zh_label, unit_en, unit_zh) in rows {
            body += &format!(
                "<tr><td>{}</td><td><b>{}</b> {}</td></tr>",
                if zh { zh_label } else { en },
                p[k].as_u64().unwrap_or(0),
                if zh { unit_zh } else { unit_en }
            );
        }
    }
    body += "</table><p>";
    body += if zh {
        "保留任务每小时运行一次，超过期限的生物特征数据会被删除；撤回同意会立即删除该学员的全部人脸数据。详见 PRIVACY.md。"
    } else {
        "The retention job runs hourly and deletes biometric data past these periods; withdrawing consent erases a student's face data at once. See PRIVACY.md."
    };
    body += "</p></div>";
    Ok(Html(page(lang, &staff, t(lang, "privacy"), &body)))
}

#[derive(Deserialize, Default)]
struct RangeQ {
    from: Option<String>,
    to: Option<String>,
}

/// The school's local days `from..=to` (YYYY-MM-DD; by default the last 31 days up to today)
/// as UTC bounds, with the days themselves.
fn local_days(
    st: &AppState,
    q: &RangeQ,
) -> Result<
    (
        DateTime<Utc>,
        DateTime<Utc>,
        chrono::NaiveDate,
        chrono::NaiveDate,
    ),
    ApiError,
> {
    let parse = |field: &str, v: &Option<String>| -> Result<Option<chrono::NaiveDate>, ApiError> {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map_err(|_| ApiError::invalid(format!("{field} {s:?}: expected YYYY-MM-DD")))
            })
            .transpose()
    };
    let today = local(st, Utc::now()).date_naive();
    let to = parse("to", &q.to)?.unwrap_or(today);
    let from = parse("from", &q.from)?.unwrap_or(to - Duration::days(30));
    if from > to {
        return Err(ApiError::invalid("from: must not be after to"));
    }
    if (to - from).num_days() > 366 {
        return Err(ApiError::invalid("from..to: at most a year"));
    }
    let off = Duration::minutes(st.store.tz_offset_minutes());
    let midnight =
        |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() - off;
    Ok((midnight(from), midnight(to) + Duration::days(1), from, to))
}

async fn reports_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Query(q): Query<RangeQ>,
) -> Result<Html<String>, ApiError> {
    let (from, to, from_day, to_day) = local_days(&st, &q)?;
    let rep = v1::attendance_report(&st, &staff, from, to).await?;
    let mut body = format!(
        "<form method=get action=/app/reports class=card id=range>{} <input type=date name=from value={from_day}> \
{} <input type=date name=to value={to_day}> <button class=alt>{}</button></form>",
        t(lang, "range_from"),
        t(lang, "range_to"),
        t(lang, "show_day"),
    );
    body += &format!("<div class=card><h2>{}</h2><table>", t(lang, "rate"));
    for r in rep["per_class"].as_array().cloned().unwrap_or_default() {
        let bp = r["rate_bp"].as_u64().unwrap_or(0);
        body += &format!(
            "<tr><td>{}</td><td style=width:60%><div class=bar style='width:{}%'></div></td><td>{:.1}%</td></tr>",
            esc(r["key"].as_str().unwrap_or("")),
            bp / 100,
            bp as f64 / 100.0
        );
    }
    body += &format!("</table></div><div class=card><h2>{}</h2>", t(lang, "heat"));
    let cells = v1::heatmap(&st, &staff, from, to).await?;
    let mut grid: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    for c in &cells {
        *grid.entry((c.weekday, c.hour)).or_default() += c.count;
    }
    let max = grid.values().copied().max().unwrap_or(1).max(1);
    body += "<table><tr><th></th>";
    for h in 7..22 {
        body += &format!("<th>{h}</th>");
    }
    body += "</tr>";
    let days = if lang == Lang::Zh {
        ["一", "二", "三", "四", "五", "六", "日"]
    } else {
        ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    };
    for (wd, name) in days.iter().enumerate() {
        body += &format!("<tr><th>{name}</th>");
        for h in 7..22 {
            let n = grid.get(&(wd as u32, h)).copied().unwrap_or(0);
            let alpha = n as f64 / max as f64;
            body += &format!(
                "<td style='background:rgba(34,170,102,{alpha:.2})'>{}</td>",
                if n > 0 { n.to_string() } else { String::new() }
            );
        }
        body += "</tr>";
    }
    body += "</table></div>";
    let keep = format!("from={from_day}&to={to_day}");
    Ok(Html(page_keeping(
        lang,
        &staff,
        t(lang, "reports"),
        &body,
        &keep,
    )))
}

async fn enroll_page(
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
) -> Html<String> {
    let body = format!(
        "<div class=card><p><label>{}<br><input id=sid></label></p><p><label>{}<br><input id=file type=file accept='image/jpeg,image/png,image/webp' capture=user></label></p>\
<button id=go>{}</button><p id=hint class=err hidden>{}</p><pre id=out></pre></div>\
<script>document.getElementById('go').onclick=async()=>{{const f=document.getElementById('file').files[0];const s=document.getElementById('sid').value;\
const out=document.getElementById('out');if(!f||!s){{out.textContent='?';return}}out.textContent='…';\
const r=await fetch('/api/v1/students/'+encodeURIComponent(s)+'/photos?filename='+encodeURIComponent(f.name),{{method:'POST',headers:{{'Content-Type':f.type,'X-CSRF-Token':document.querySelector('meta[name=csrf]').content}},body:f}});\
const j=await r.json();document.getElementById('hint').hidden=!(j.error&&j.error.code==='unsupported_photo_format');\
out.textContent=JSON.stringify(j,null,2)}}</script>",
        t(lang, "student"),
        t(lang, "photo"),
        t(lang, "upload"),
        t(lang, "convert_photo")
    );
    Html(page(lang, &staff, t(lang, "enroll"), &body))
}
