//! The front desk's check-in page: a child checked in by hand (a name picked from the list) or
//! by scanning their card with a USB scanner (it types the card's code into the focused field
//! and presses Enter). The same exactly-once rules as the camera's; the page says what happened.

use super::layout::page;
use super::{check_csrf, picker, t, url, words_in_lang_field, Choice, Lang, Words};
use crate::auth::Staff;
use crate::error::ApiError;
use crate::v1;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use rollcall_domain::ledger::{AttendanceSource, CheckInOutcome};
use serde::Deserialize;

/// What the last check-in did (the redirect after a post carries it).
#[derive(Deserialize)]
pub(super) struct DoneQ {
    done: Option<String>,
    student: Option<String>,
    lesson: Option<String>,
    source: Option<String>,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"
{%- if let Some(d) = done -%}
<p class='card ok' id=done>{{ d }}</p>
{%- endif -%}
<div class=card id=checkin><h2>{{ t("checkin_by_hand") }}</h2><p>{{ t("checkin_help") }}</p><form method=post action=/app/checkin><input type=hidden name=_csrf value="{{ csrf }}"><input name=who id=who list=students placeholder="{{ t("checkin_field") }}" required autofocus autocomplete=off maxlength=200><button>{{ t("checkin") }}</button></form>
<datalist id=students>
{%- for s in picker -%}
<option value="{{ s.id }}">{{ s.name }}</option>
{%- endfor -%}
</datalist></div>"#
)]
struct CheckinPage<'a> {
    lang: Lang,
    csrf: &'a str,
    done: Option<String>,
    picker: Vec<Choice>,
}

words_in_lang_field!(CheckinPage<'_>);

pub(super) async fn checkin_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Query(q): Query<DoneQ>,
) -> Result<Html<String>, ApiError> {
    let students = st.store.students().await?;
    let name_of = |id: &str| {
        students
            .iter()
            .find(|s| s.id == id)
            .map_or_else(|| id.to_string(), |s| s.name.clone())
    };
    let done = match (q.done.as_deref(), q.student.as_deref()) {
        (Some(kind), Some(s)) => {
            let key = match kind {
                "checked_in" => "done_checked_in",
                "already" => "done_already",
                _ => "done_visit",
            };
            let by_card = q.source.as_deref() == Some("qr");
            Some(format!(
                "{}{}",
                t(lang, key)
                    .replace("{student}", &name_of(s))
                    .replace("{lesson}", q.lesson.as_deref().unwrap_or_default()),
                if by_card { t(lang, "by_card") } else { "" }
            ))
        }
        _ => None,
    };
    let picker = picker(&students, &staff);
    let body = CheckinPage {
        lang,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        done,
        picker,
    };
    page(lang, &staff, t(lang, "checkin"), body)
}

/// The code a student's card carries: what a USB scanner types into the check-in field.
pub(super) fn card_code(student: &str) -> String {
    format!("rollcall:{student}")
}

/// The QR code of `text` as an inline SVG element (no XML prolog), `px` wide at least.
fn qr_svg(text: &str, px: u32) -> Result<String, ApiError> {
    let code = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| ApiError::invalid(format!("card: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(px, px)
        .quiet_zone(true)
        .build();
    // the renderer writes an XML prolog before the <svg> element: not for inline HTML
    Ok(match svg.find("<svg") {
        Some(i) => svg[i..].to_string(),
        None => svg,
    })
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<div class='card qrcard' id=card data-code="{{ code }}"><h2>{{ name }}</h2><div class=qr>{{ svg|safe }}</div><p>{{ id }} · {{ school }}</p></div><p class=noprint><button onclick=window.print()>{{ t("print") }}</button></p>"#
)]
struct CardPage<'a> {
    lang: Lang,
    id: &'a str,
    name: &'a str,
    school: &'a str,
    code: String,
    /// Drawn by `qr_svg` from the code alone (modules, no text of the student's): markup we
    /// made, not user input.
    svg: String,
}

words_in_lang_field!(CardPage<'_>);

/// A student's printable card: name, id and the QR code the front desk scans at the door.
pub(super) async fn card_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let s = v1::student_in_reach(&st, &staff, &id).await?;
    let code = card_code(&id);
    let svg = qr_svg(&code, 240)?;
    let body = CardPage {
        lang,
        id: &id,
        name: &s.name,
        school: st.store.school_id(),
        code,
        svg,
    };
    page(lang, &staff, t(lang, "card"), body)
}

#[derive(Deserialize)]
pub(super) struct CheckinForm {
    _csrf: String,
    who: String,
}

/// A scanned card's code (`rollcall:<student id>`) or a student id picked from the list.
fn who(field: &str) -> Result<(String, AttendanceSource), ApiError> {
    let field = field.trim();
    let (id, source) = match field.strip_prefix("rollcall:") {
        Some(id) => (id.trim(), AttendanceSource::Qr),
        None => (field, AttendanceSource::Manual),
    };
    if id.is_empty() || id.len() > 200 {
        return Err(ApiError::invalid(
            "who: scan the student's card or choose the student from the list",
        ));
    }
    Ok((id.to_string(), source))
}

pub(super) async fn checkin_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Form(f): Form<CheckinForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    let (student, source) = who(&f.who)?;
    // an error (unknown student, another campus's) goes back as the API's; the web guard
    // turns it into a page in the reader's language
    let r = v1::check_in_by_hand(&st, &staff, &student, source, None, None).await?;
    let s = url(&student);
    let src = source.as_str();
    let done = match &r.outcome {
        CheckInOutcome::Recorded { lesson_id, .. } => {
            format!(
                "checked_in&student={s}&lesson={}&source={src}",
                url(lesson_id)
            )
        }
        CheckInOutcome::AlreadyRecorded { lesson_id, .. } => {
            format!("already&student={s}&lesson={}&source={src}", url(lesson_id))
        }
        CheckInOutcome::Unscheduled | CheckInOutcome::DuplicateEvent => {
            format!("visit&student={s}&source={src}")
        }
    };
    Ok(Redirect::to(&format!("/app/checkin?done={done}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_carries_what_the_check_in_field_reads() {
        let code = card_code("s1");
        assert_eq!(who(&code).unwrap(), ("s1".into(), AttendanceSource::Qr));
        let svg = qr_svg(&code, 240).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert!(!svg.contains("s1"), "the code is drawn, not written");
    }

    #[test]
    fn a_scanned_card_and_a_picked_name_are_told_apart() {
        assert_eq!(
            who(" rollcall:s1\n").unwrap(),
            ("s1".into(), AttendanceSource::Qr)
        );
        assert_eq!(who("s1").unwrap(), ("s1".into(), AttendanceSource::Manual));
        assert!(who("rollcall:").is_err());
        assert!(who("   ").is_err());
        assert!(who(&"x".repeat(201)).is_err());
    }
}
