//! Alerts that are not resolved yet; those who may act acknowledge or resolve them.

use super::layout::page;
use super::{check_csrf, local, t, words_in_lang_field, Lang, Words};
use crate::alert_text::{alert_text, AlertNames};
use crate::auth::{roles, Staff};
use crate::error::ApiError;
use crate::v1;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use rollcall_domain::ledger::AlertState;
use serde::Deserialize;

/// An alert of the list.
struct Alert {
    id: i64,
    /// Local "MM-DD HH:MM".
    at: String,
    kind: &'static str,
    /// The alert in the reader's words.
    message: String,
    state: &'static str,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<div class=card><table>
{%- for a in alerts -%}
<tr id=alert-{{ a.id }}><td>{{ a.at }}</td><td>{{ a.kind }}</td><td class=alert-text>{{ a.message }}</td><td>{{ a.state }}</td>
{%- if acts -%}
<td><form method=post action=/app/alerts/{{ a.id }}><input type=hidden name=_csrf value="{{ csrf }}"><button name=action value=acknowledge class=alt>{{ t("acknowledge") }}</button><button name=action value=resolve>{{ t("resolve") }}</button></form></td>
{%- endif -%}
</tr>
{%- endfor -%}
</table></div>"#
)]
struct Alerts<'a> {
    lang: Lang,
    csrf: &'a str,
    /// Whether the reader may acknowledge and resolve.
    acts: bool,
    alerts: Vec<Alert>,
}

words_in_lang_field!(Alerts<'_>);

pub(super) async fn alerts_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
) -> Result<Html<String>, ApiError> {
    let names = AlertNames::load(&st).await?;
    let off = st.store.tz_offset_minutes();
    let alerts = v1::alerts_for(&st, &staff, None)
        .await?
        .into_iter()
        .filter(|a| a.state != AlertState::Resolved)
        .map(|a| Alert {
            id: a.id,
            at: local(&st, a.created_at).format("%m-%d %H:%M").to_string(),
            kind: t(lang, a.kind.as_str()),
            // in the reader's words, from the alert's data and today's names
            message: alert_text(lang == Lang::Zh, &a, &names, off),
            state: t(lang, a.state.as_str()),
        })
        .collect();
    let body = Alerts {
        lang,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        acts: staff.require(roles::ALERTS).is_ok(),
        alerts,
    };
    page(lang, &staff, t(lang, "alerts"), body)
}

#[derive(Deserialize)]
pub(super) struct AlertForm {
    _csrf: String,
    action: String,
}

pub(super) async fn alert_form(
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
