//! The students: the list of the reader's campuses' students, and a student's page (balance,
//! what needs attention, packages, ledger).

use super::layout::page;
use super::{local, t, words_in_lang_field, Lang, Words};
use crate::auth::Staff;
use crate::error::ApiError;
use crate::v1;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Html;
use axum::Extension;
use rollcall_domain::ledger::AlertState;

/// A student of the list.
struct Row {
    id: String,
    name: String,
    campuses: String,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<div class=card><table>
{%- for s in students -%}
<tr><td><a href="/app/students/{{ s.id }}">{{ s.id }}</a></td><td>{{ s.name }}</td><td>{{ s.campuses }}</td></tr>
{%- endfor -%}
</table></div>"#
)]
struct Students {
    students: Vec<Row>,
}

pub(super) async fn students_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
) -> Result<Html<String>, ApiError> {
    let students = st
        .store
        .students()
        .await?
        .into_iter()
        .filter(|s| staff.is_all_campuses() || s.campuses.iter().any(|c| staff.allows_campus(c)))
        .map(|s| Row {
            campuses: s.campuses.join(", "),
            id: s.id,
            name: s.name,
        })
        .collect();
    page(lang, &staff, t(lang, "students"), Students { students })
}

/// An alert about the student that is not resolved yet.
struct Attention {
    /// Local "YYYY-MM-DD HH:MM".
    at: String,
    kind: &'static str,
    message: String,
    state: &'static str,
}

/// A package with what is left of it.
struct Package {
    id: String,
    balance: String,
    /// Local "YYYY-MM-DD".
    expires: String,
    expired: bool,
}

/// A ledger entry, newest first.
struct Entry {
    /// Local "YYYY-MM-DD HH:MM".
    at: String,
    kind: &'static str,
    /// Lessons, signed, two decimals.
    units: String,
    lesson: String,
    actor: String,
    note: String,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<div class=card><div class=row><img class=face src="/api/v1/students/{{ id }}/photo" alt=''><div><h2>{{ name }}</h2><p>{{ t("balance") }}: <b id=balance>{{ available }}</b></p><p>{{ campuses }}</p>
{%- if let Some(c) = checkin_csrf -%}
<form method=post action=/app/checkin id=checkin-now><input type=hidden name=_csrf value="{{ c }}"><input type=hidden name=who value="{{ id }}"><button>{{ t("checkin") }}</button> <a href="/app/students/{{ id }}/card">{{ t("print_card") }}</a></form>
{%- endif -%}
</div></div></div>
{%- if !attention.is_empty() -%}
<div class=card id=student-alerts><h2>{{ t("alerts") }}</h2><table>
{%- for a in attention -%}
<tr><td>{{ a.at }}</td><td class=err>{{ a.kind }}</td><td>{{ a.message }}</td><td>{{ a.state }}</td></tr>
{%- endfor -%}
</table></div>
{%- endif -%}
<div class=card><h2>{{ t("packages") }}</h2><table>
{%- for p in packages -%}
<tr><td>{{ p.id }}</td><td>{{ p.balance }}</td><td>{{ p.expires }}</td><td>{% if p.expired %}{{ t("pkg_expired") }}{% endif %}</td></tr>
{%- endfor -%}
</table></div><div class=card><h2>{{ t("ledger") }}</h2><table>
{%- for e in entries -%}
<tr><td>{{ e.at }}</td><td>{{ e.kind }}</td><td>{{ e.units }}</td><td>{{ e.lesson }}</td><td>{{ e.actor }}</td><td>{{ e.note }}</td></tr>
{%- endfor -%}
</table></div>"#
)]
struct StudentPage<'a> {
    lang: Lang,
    id: &'a str,
    name: &'a str,
    available: String,
    campuses: String,
    /// The CSRF token of the check-in button, for the roles that may check a student in.
    checkin_csrf: Option<&'a str>,
    attention: Vec<Attention>,
    packages: Vec<Package>,
    entries: Vec<Entry>,
}

words_in_lang_field!(StudentPage<'_>);

pub(super) async fn student_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let s = v1::student_in_reach(&st, &staff, &id).await?;
    let b = st.store.balance(&id, st.store.now()).await?;
    // what needs attention about this student (e.g. a check-in approved without lessons
    // left), until it is resolved
    let attention = st
        .store
        .alerts(None)
        .await?
        .into_iter()
        .filter(|a| a.student_id == id && a.state != AlertState::Resolved)
        .map(|a| Attention {
            at: local(&st, a.created_at)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            kind: t(lang, a.kind.as_str()),
            message: a.message,
            state: t(lang, a.state.as_str()),
        })
        .collect();
    let packages = b
        .packages
        .iter()
        .map(|p| Package {
            id: p.package.package_id.to_string(),
            balance: p.balance.to_string(),
            expires: local(&st, p.package.expires_at)
                .format("%Y-%m-%d")
                .to_string(),
            expired: p.expired,
        })
        .collect();
    let entries = st
        .store
        .entries(Some(&id))
        .await?
        .iter()
        .rev()
        .map(|e| Entry {
            at: local(&st, e.at).format("%Y-%m-%d %H:%M").to_string(),
            kind: t(lang, e.entry.kind.as_str()),
            units: format!("{:+.2}", e.entry.units as f64 / 100.0),
            lesson: e.entry.lesson_id.clone().unwrap_or_default(),
            actor: e.actor.clone(),
            note: e.note.clone().unwrap_or_default(),
        })
        .collect();
    let body = StudentPage {
        lang,
        id: &id,
        name: &s.name,
        available: b.available.to_string(),
        campuses: s.campuses.join(", "),
        checkin_csrf: staff
            .require(crate::auth::roles::DESK)
            .ok()
            .and(staff.csrf.as_deref()),
        attention,
        packages,
        entries,
    };
    page(lang, &staff, &s.name, body)
}
