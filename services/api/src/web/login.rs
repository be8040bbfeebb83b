//! Logging in and out of the staff app.

use super::{check_csrf, html, lang_of, words_in_lang_field, Lang, Words};
use crate::auth::{self, Staff};
use crate::error::ApiError;
use crate::v1::{self, Login};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

#[derive(Deserialize, Default)]
pub(super) struct LangQ {
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

/// What the login page says above its form.
enum Note {
    None,
    /// The last try's username or password was wrong.
    BadLogin,
    /// The form's token is missing or stale.
    Expired,
    /// Too many failed logins: how long to wait, in the reader's words.
    Throttled(String),
}

/// The login page: `note` above the form, `csrf` in it.
#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html><html><head><meta charset=utf-8><meta name=viewport content='width=device-width,initial-scale=1'><title>rollcall</title><style>{{ crate::web::layout::CSS|safe }}</style></head><body><main><div class=card><h1>rollcall</h1>
{%- match note -%}
{%- when Note::None -%}
{%- when Note::BadLogin -%}<p class=err>{{ t("bad_login") }}</p>
{%- when Note::Expired -%}<p class=err id=csrf>{{ t("login_expired") }}</p>
{%- when Note::Throttled(wait) -%}<p class=err id=throttled>{{ wait }}</p>
{%- endmatch -%}
<form method=post action=/app/login><input type=hidden name=_csrf value="{{ csrf }}"><p><label>{{ t("username") }}<br><input id=username name=username autocomplete=username required></label></p><p><label>{{ t("password") }}<br><input id=password name=password type=password autocomplete=current-password required></label></p><button id=login>{{ t("login") }}</button></form><p><a href='?lang=en'>EN</a> · <a href='?lang=zh'>中文</a></p></div></main></body></html>"#
)]
struct LoginPage<'a> {
    lang: Lang,
    note: Note,
    csrf: &'a str,
}

words_in_lang_field!(LoginPage<'_>);

/// The login page (`status`) with `note` above the form and a fresh form token.
fn login_response(st: &AppState, status: StatusCode, lang: Lang, note: Note) -> Response {
    let (tok, cookie) = login_csrf(st);
    let page = match html(&LoginPage {
        lang,
        note,
        csrf: &tok,
    }) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    (
        status,
        [
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        page,
    )
        .into_response()
}

pub(super) async fn login_page(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQ>,
) -> Response {
    let lang = lang_of(
        &headers,
        q.lang.as_deref().map(|l| format!("lang={l}")).as_deref(),
    );
    let note = if q.error.is_some() {
        Note::BadLogin
    } else {
        Note::None
    };
    login_response(&st, StatusCode::OK, lang, note)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    _csrf: String,
}

pub(super) async fn login_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    auth::ClientIp(ip): auth::ClientIp,
    Form(f): Form<LoginForm>,
) -> Response {
    let lang = lang_of(&headers, None);
    let expected = auth::cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !auth::constant_eq(expected.as_bytes(), f._csrf.as_bytes()) {
        // not posted from our own login page: nothing checked, nothing counted
        return login_response(&st, StatusCode::FORBIDDEN, lang, Note::Expired);
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
                Note::Throttled(msg),
            );
            r.headers_mut().insert(header::RETRY_AFTER, wait.into());
            r
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    _csrf: String,
}

pub(super) async fn logout(
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
