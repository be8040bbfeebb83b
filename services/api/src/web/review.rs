//! The review queue: sightings the matcher was not sure of, with their candidates; those who
//! may decide approve a candidate, reject the sighting or reassign it to another student.

use super::layout::page;
use super::{check_csrf, local, picker, t, url, words_in_lang_field, Choice, Lang, Words};
use crate::auth::{roles, Staff};
use crate::error::ApiError;
use crate::v1::{self, Decide};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use rollcall_ledger::ReviewDecision;
use serde::Deserialize;
use std::collections::BTreeMap;

/// What the last decision did (the form redirects here with it).
#[derive(Deserialize, Default)]
pub(super) struct DoneQ {
    done: Option<String>,
    student: Option<String>,
    lesson: Option<String>,
}

/// An item waiting in the queue.
struct Item {
    id: i64,
    camera: String,
    /// Local "HH:MM:SS".
    seen: String,
    candidates: Vec<Candidate>,
}

/// A student the sighting may be, by name (when known) and id, with the match's score.
struct Candidate {
    id: String,
    name: Option<String>,
    /// Two decimals.
    score: String,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"
{%- if let Some(d) = done -%}
<p class='card ok' id=done>{{ d }}</p>
{%- endif -%}
{%- if items.is_empty() -%}
<p id=empty>{{ t("no_items") }}</p>
{%- endif -%}
{%- for i in items -%}
<div class=card id=review-{{ i.id }}><div class=row><figure><img class=face src=/api/v1/review/{{ i.id }}/crop alt=crop><figcaption>{{ t("captured") }} · {{ i.camera }} · {{ i.seen }}</figcaption></figure>
{%- for c in i.candidates -%}
<figure><img class=face src="/api/v1/students/{{ c.id }}/photo" alt="{{ c.id }}"><figcaption>
{%- if let Some(n) = c.name %}{{ n }} <small>{{ c.id }}</small>{% else %}{{ c.id }}{% endif %} · {{ c.score }}
{%- if decides -%}
<form method=post action=/app/review/{{ i.id }}><input type=hidden name=_csrf value="{{ csrf }}"><input type=hidden name=decision value=approve><input type=hidden name=student_id value="{{ c.id }}"><button class=approve>{{ t("approve") }}</button></form>
{%- endif -%}
</figcaption></figure>
{%- endfor -%}
</div>
{%- if decides -%}
<form method=post action=/app/review/{{ i.id }} onsubmit="return confirm('{{ t("confirm_reject") }}')"><input type=hidden name=_csrf value="{{ csrf }}"><input type=hidden name=decision value=reject><button class='no reject'>{{ t("reject") }}</button></form><form method=post action=/app/review/{{ i.id }}><input type=hidden name=_csrf value="{{ csrf }}"><input type=hidden name=decision value=reassign><input name=student_id list=students placeholder="{{ t("student") }}" required autocomplete=off><button class=alt>{{ t("reassign") }}</button></form>
{%- endif -%}
</div>
{%- endfor -%}
{%- if decides -%}
<datalist id=students>
{%- for s in picker -%}
<option value="{{ s.id }}">{{ s.name }}</option>
{%- endfor -%}
</datalist>
{%- endif -%}"#
)]
struct Review<'a> {
    lang: Lang,
    csrf: &'a str,
    /// Whether the reader may decide (the queue is readable by every role).
    decides: bool,
    /// What the last decision did, in the reader's words.
    done: Option<String>,
    items: Vec<Item>,
    picker: Vec<Choice>,
}

words_in_lang_field!(Review<'_>);

pub(super) async fn review_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Query(q): Query<DoneQ>,
) -> Result<Html<String>, ApiError> {
    let items = v1::review_list(&st, &staff, Some("pending"), 100).await?;
    // the queue is readable by every role; its buttons are shown to those who may decide
    let decides = staff.require(roles::REVIEW).is_ok();
    // candidates by name (the id beside it), as a person knows them
    let students = st.store.students().await?;
    let names: BTreeMap<&str, &str> = students
        .iter()
        .map(|s| (s.id.as_str(), s.name.as_str()))
        .collect();
    // the reassign field's searchable list: the students of the reviewer's campuses
    let picker = picker(&students, &staff);
    let done = match (q.done.as_deref(), &q.student) {
        (Some("checked_in"), Some(s)) => {
            let name = names.get(s.as_str()).copied().unwrap_or(s);
            let lesson = q.lesson.as_deref().unwrap_or_default();
            Some(
                t(lang, "done_checked_in")
                    .replace("{student}", name)
                    .replace("{lesson}", lesson),
            )
        }
        (Some(_), _) => Some(t(lang, "done_decided").to_string()),
        _ => None,
    };
    let items = items
        .iter()
        .map(|i| Item {
            id: i.id,
            camera: i.camera_id.clone().unwrap_or_default(),
            seen: local(&st, i.seen_at).format("%H:%M:%S").to_string(),
            candidates: i
                .candidates
                .iter()
                .map(|c| Candidate {
                    id: c.student_id.clone(),
                    name: names.get(c.student_id.as_str()).map(|n| n.to_string()),
                    // the similarity as a plain share, in the reader's words
                    score: format!(
                        "{} {:.0}%",
                        t(lang, "similarity"),
                        (c.score.clamp(0.0, 1.0) * 100.0)
                    ),
                })
                .collect(),
        })
        .collect();
    let review = Review {
        lang,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        decides,
        done,
        items,
        picker,
    };
    page(lang, &staff, t(lang, "review"), review)
}

#[derive(Deserialize)]
pub(super) struct DecideForm {
    _csrf: String,
    decision: ReviewDecision,
    student_id: Option<String>,
}

pub(super) async fn review_form(
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
