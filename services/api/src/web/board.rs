//! Today's attendance board: the day's lessons with each booked student's status.

use super::layout::page_keeping;
use super::{local, local_hm, t, words_in_lang_field, Lang, Words};
use crate::alert_text::{alert_text, AlertNames};
use crate::auth::Staff;
use crate::error::ApiError;
use crate::v1;
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::Extension;
use chrono::NaiveDate;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
pub(super) struct BoardQ {
    date: Option<String>,
    campus: Option<String>,
}

/// A lesson of the day on the board.
struct Lesson {
    id: String,
    class_name: String,
    campus_id: String,
    /// Local "HH:MM".
    start: String,
    end: String,
    /// How many students have each status, in the reader's words.
    summary: String,
    students: Vec<Chip>,
}

/// A booked student's chip: their status as a class, a data attribute and words.
struct Chip {
    id: String,
    name: String,
    status: String,
    words: &'static str,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<meta http-equiv=refresh content=15><div class=card id=days><a href='/app?date={{ prev }}{% if let Some(c) = campus %}&campus={{ c }}{% endif %}'>{{ t("prev_day") }}</a> <form method=get action=/app style=display:inline><input type=date name=date value={{ day }}><button class=alt>{{ t("show_day") }}</button></form> <a href='/app'>{{ t("today") }}</a> <a href='/app?date={{ next }}{% if let Some(c) = campus %}&campus={{ c }}{% endif %}'>{{ t("next_day") }}</a></div>
{%- if open_alerts > 0 -%}
<div class=card id=board-alerts><h2><a href=/app/alerts>{{ t("alerts") }}</a> ({{ open_alerts }})</h2><ul>
{%- for a in alerts -%}
<li id=board-alert-{{ a.id }}>{{ a.at }} · {{ a.text }}</li>
{%- endfor -%}
</ul></div>
{%- endif -%}
{%- if lessons.is_empty() -%}
<p>{{ t("no_lessons") }}</p>
{%- endif -%}
{%- for l in lessons -%}
<div class=card data-lesson="{{ l.id }}"><h2>{{ l.class_name }} · {{ l.campus_id }} · {{ l.start }}–{{ l.end }}</h2><p>{{ l.summary }}</p><div class=chips>
{%- for s in l.students -%}
<a class='chip {{ s.status }}' data-student="{{ s.id }}" data-status="{{ s.status }}" href="/app/students/{{ s.id }}">{{ s.name }} · {{ s.words }}</a>
{%- endfor -%}
</div></div>
{%- endfor -%}"#
)]
struct Board<'a> {
    lang: Lang,
    day: NaiveDate,
    prev: NaiveDate,
    next: NaiveDate,
    /// The campus shown, when one was chosen (letters, digits, `-` and `_` only).
    campus: Option<&'a str>,
    lessons: Vec<Lesson>,
    /// Alerts not yet acknowledged or resolved, of the reader's campuses.
    open_alerts: usize,
    /// The newest of them, in the reader's words.
    alerts: Vec<BoardAlert>,
}

/// An open alert on the board.
struct BoardAlert {
    id: i64,
    /// Local "MM-DD HH:MM".
    at: String,
    text: String,
}

/// Open alerts the board shows (the newest; the alerts page has them all).
const BOARD_ALERTS: usize = 5;

words_in_lang_field!(Board<'_>);

pub(super) async fn board_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Query(q): Query<BoardQ>,
) -> Result<Html<String>, ApiError> {
    let v = v1::board_json(&st, &staff, &q.date, &q.campus).await?;
    // places by their names, not their ids
    let campus_names: std::collections::BTreeMap<String, String> =
        st.store.campuses().await?.into_iter().collect();
    // the day shown (board_json has checked a given date), with the days around it
    let day = q
        .date
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .unwrap_or_else(|| local(&st, st.store.now()).date_naive());
    let campus = q.campus.as_deref().filter(|c| {
        c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
    });
    let mut keep = vec![("date", day.to_string())];
    keep.extend(campus.map(|c| ("campus", c.to_string())));
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let lessons = v["lessons"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let counts: BTreeMap<String, u64> =
                serde_json::from_value(l["counts"].clone()).unwrap_or_default();
            let summary: Vec<String> = counts
                .iter()
                .map(|(k, n)| format!("{} {n}", t(lang, k)))
                .collect();
            let students = l["students"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    let status = s["status"].as_str().unwrap_or("not_yet");
                    Chip {
                        id: text(&s["student_id"]),
                        name: text(&s["name"]),
                        status: status.to_string(),
                        words: t(lang, status),
                    }
                })
                .collect();
            Lesson {
                id: text(&l["id"]),
                class_name: text(&l["class_name"]),
                campus_id: {
                    let id = text(&l["campus_id"]);
                    campus_names.get(&id).cloned().unwrap_or(id)
                },
                start: local_hm(&st, l["start"].as_str().unwrap_or("")),
                end: local_hm(&st, l["end"].as_str().unwrap_or("")),
                summary: summary.join(" · "),
                students,
            }
        })
        .collect();
    let open: Vec<_> = v1::alerts_for(&st, &staff, Some("open")).await?;
    let alerts = if open.is_empty() {
        Vec::new()
    } else {
        let names = AlertNames::load(&st).await?;
        let off = st.store.tz_offset_minutes();
        open.iter()
            .take(BOARD_ALERTS)
            .map(|a| BoardAlert {
                id: a.id,
                at: local(&st, a.created_at).format("%m-%d %H:%M").to_string(),
                text: alert_text(lang == Lang::Zh, a, &names, off),
            })
            .collect()
    };
    let board = Board {
        lang,
        open_alerts: open.len(),
        alerts,
        day,
        prev: day.pred_opt().unwrap_or(day),
        next: day.succ_opt().unwrap_or(day),
        campus,
        lessons,
    };
    page_keeping(lang, &staff, t(lang, "board"), board, &keep)
}
