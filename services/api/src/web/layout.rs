//! The page around every staff-app page (head, stylesheet, navigation, language switch, log
//! out) and the pages that are not a feature's: forbidden, an error in words, no such page.

use super::{html, t, Lang, Words};
use crate::auth::{roles, Staff};
use crate::error::ApiError;
use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use std::fmt;

/// The stylesheet: a compile-time constant, inserted unescaped (`|safe`) by the templates;
/// nothing a user enters ever goes into it.
pub(super) const CSS: &str = "body{font-family:system-ui,'PingFang SC','Noto Sans CJK SC',sans-serif;margin:0;background:#f6f7f9;color:#222;font-size:17px}\
nav{display:flex;flex-wrap:wrap;gap:.2em;background:#234;padding:.4em}nav a{color:#fff;text-decoration:none;padding:.6em .8em;border-radius:6px}nav a:hover{background:#456}\
main{padding:1em;max-width:1100px;margin:auto}.card{background:#fff;border-radius:10px;padding:1em;margin:.7em 0;box-shadow:0 1px 3px #0002}\
.chips{display:flex;flex-wrap:wrap;gap:.4em}.chip{padding:.5em .8em;border-radius:20px;background:#eee;min-width:6em}\
.present{background:#c8f0c8}.late{background:#fde7a9}.absent{background:#f6c1c1}.excused{background:#d8e4fb}.left_early{background:#f3d6f3}.not_yet{background:#eee}\
button,input,select{font-size:1em;padding:.6em .9em;border-radius:8px;border:1px solid #aaa;margin:.2em}button{background:#2a6;color:#fff;border:0;min-height:44px}button.no{background:#b33}button.alt{background:#46a}\
img.face{width:140px;height:140px;object-fit:cover;border-radius:8px;background:#ddd}.row{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4em;text-align:left}.err{color:#b33}.ok{color:#262}.bar{background:#2a6;height:1em;border-radius:4px}\
.qrcard{width:86mm;text-align:center}.qrcard svg{width:60mm;height:60mm}\
@media print{nav,.noprint,h1{display:none}body,main{background:#fff;padding:0;margin:0}.card{box-shadow:none;border:1px solid #999}}";

/// Another compiled template's output placed inside a page. That template escaped every value
/// it was given when it rendered, so its output goes in as it is (`HtmlSafe`); nothing else can
/// be wrapped here.
pub(super) struct Fragment<B: Template>(B);

impl<B: Template> fmt::Display for Fragment<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.render_into(f).map_err(|_| fmt::Error)
    }
}

impl<B: Template> askama::filters::HtmlSafe for Fragment<B> {}

/// The staff app's page: `title` as its heading and `body` below the navigation.
#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html><html lang={{ lang.html_lang() }}><head><meta charset=utf-8><meta name=viewport content='width=device-width,initial-scale=1'><meta name=csrf content="{{ csrf }}"><title>{{ title }} · rollcall</title><style>{{ crate::web::layout::CSS|safe }}</style></head><body><nav>
{%- for (href, key) in nav -%}
<a href={{ href }}>{{ t(key) }}</a>
{%- endfor -%}
<a href='?{% for (k, v) in keep %}{{ k }}={{ v }}&{% endfor %}lang=en'>EN</a><a href='?{% for (k, v) in keep %}{{ k }}={{ v }}&{% endfor %}lang=zh'>中文</a><form method=post action=/app/logout style=margin-left:auto><input type=hidden name=_csrf value="{{ csrf }}"><button class=alt>{{ t("logout") }} ({{ username }})</button></form></nav><main><h1>{{ title }}</h1>{{ body }}</main></body></html>"#
)]
struct Page<'a, B: Template> {
    lang: Lang,
    title: &'a str,
    csrf: &'a str,
    username: &'a str,
    nav: Vec<(&'static str, &'static str)>,
    keep: &'a [(&'static str, String)],
    body: Fragment<B>,
}

impl<B: Template> Words for Page<'_, B> {
    fn lang(&self) -> Lang {
        self.lang
    }
}

/// `body` (a template) as the page titled `title`.
pub(super) fn page<B: Template>(
    lang: Lang,
    staff: &Staff,
    title: &str,
    body: B,
) -> Result<Html<String>, ApiError> {
    page_keeping(lang, staff, title, body, &[])
}

/// [`page`] whose language links keep the page's own query (`keep`: its fields and values,
/// e.g. `date` = `2026-03-02`), so switching the language stays on the same day.
pub(super) fn page_keeping<B: Template>(
    lang: Lang,
    staff: &Staff,
    title: &str,
    body: B,
    keep: &[(&'static str, String)],
) -> Result<Html<String>, ApiError> {
    let nav = [
        ("/app", "board"),
        ("/app/checkin", "checkin"),
        ("/app/daily", "daily"),
        ("/app/teaching", "teaching"),
        ("/app/review", "review"),
        ("/app/students", "students"),
        ("/app/leave", "lm_leave"),
        ("/app/timetable", "tt_timetable"),
        ("/app/alerts", "alerts"),
        ("/app/refunds", "refunds"),
        ("/app/finance", "finance"),
        ("/app/cameras", "cameras"),
        ("/app/reports", "reports"),
        ("/app/enroll", "enroll"),
        ("/app/privacy", "privacy"),
    ]
    .into_iter()
    .filter(|(href, _)| *href != "/app/enroll" || staff.require(roles::ENROLL).is_ok())
    .filter(|(href, _)| *href != "/app/checkin" || staff.require(roles::DESK).is_ok())
    .filter(|(href, _)| {
        !matches!(*href, "/app/daily" | "/app/teaching") || staff.require(roles::DESK).is_ok()
    })
    .filter(|(href, _)| *href != "/app/refunds" || staff.require(roles::SELL).is_ok())
    .filter(|(href, _)| *href != "/app/finance" || staff.require(roles::MONEY).is_ok())
    .collect();
    html(&Page {
        lang,
        title,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        username: &staff.account.username,
        nav,
        keep,
        body: Fragment(body),
    })
}

/// A page or an error as the response (a template that cannot render is the server's error).
fn respond(status: StatusCode, page: Result<Html<String>, ApiError>) -> Response {
    match page {
        Ok(p) => (status, p).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Template)]
#[template(ext = "html", source = "<p class=err>{{ t(\"forbidden\") }}</p>")]
struct Forbidden {
    lang: Lang,
}

impl Words for Forbidden {
    fn lang(&self) -> Lang {
        self.lang
    }
}

/// What a signed-in reader sees where their role or campus may not go.
pub(super) fn forbidden_page(lang: Lang, staff: &Staff) -> Response {
    respond(
        StatusCode::FORBIDDEN,
        page(lang, staff, "403", Forbidden { lang }),
    )
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<div class=card id=error><p class=err>{{ t(key) }}</p>{% if let Some(d) = detail %}<p>{{ d }}</p>{% endif %}<p><a href=/app>{{ t("back_to_board") }}</a></p></div>"#
)]
struct ErrorBody {
    lang: Lang,
    key: &'static str,
    /// The server's own words (English), shown to readers of English.
    detail: Option<String>,
}

impl Words for ErrorBody {
    fn lang(&self) -> Lang {
        self.lang
    }
}

/// An error of a page or form (the API's JSON error) as a page a person can read: what went
/// wrong in their language, the server's detail in English, and the way back to the board.
pub(super) async fn friendly_error(resp: Response, lang: Lang, staff: &Staff) -> Response {
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
    let detail = Some(detail).filter(|d| lang == Lang::En && !d.is_empty());
    let body = ErrorBody { lang, key, detail };
    respond(
        parts.status,
        page(lang, staff, t(lang, "error_title"), body),
    )
}

/// The page for an address under `/app` that does not exist: in both languages.
#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html><html lang=zh-CN><head><meta charset=utf-8><title>404 · rollcall</title><style>{{ crate::web::layout::CSS|safe }}</style></head><body><main><div class=card id=error><p class=err>{{ no_page_zh }}</p><p class=err>{{ no_page_en }}</p><p><a href=/app>{{ back_zh }}</a> · <a href=/app>{{ back_en }}</a></p></div></main></body></html>"#
)]
struct UnknownPage {
    no_page_zh: &'static str,
    no_page_en: &'static str,
    back_zh: &'static str,
    back_en: &'static str,
}

/// A page under `/app` that does not exist, for anyone (no session needed): in both
/// languages, with the way back.
pub(crate) fn unknown_app_page() -> Response {
    let p = UnknownPage {
        no_page_zh: t(Lang::Zh, "err_no_page"),
        no_page_en: t(Lang::En, "err_no_page"),
        back_zh: t(Lang::Zh, "back_to_board"),
        back_en: t(Lang::En, "back_to_board"),
    };
    respond(StatusCode::NOT_FOUND, html(&p))
}
