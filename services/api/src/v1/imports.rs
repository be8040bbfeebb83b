//! CSV import and export.

use super::run;
use crate::auth::Staff;
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

/// What the import wrote (all rows, or nothing: an error answer).
#[derive(Serialize, ToSchema)]
pub(super) struct Imported {
    #[schema(value_type = crate::schema::ImportSummary)]
    imported: rollcall_ledger::ImportSummary,
}

pub(super) async fn import(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    crate::RawBody(body): crate::RawBody,
) -> ApiResult<Json<Imported>> {
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
    Ok(Json(Imported { imported: summary }))
}

pub(super) fn csv_field(s: &str) -> String {
    // quote, and neutralise spreadsheet formulas
    // a leading tab or carriage return is skipped by spreadsheets before they read a formula
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub(super) fn csv_response(name: &str, body: String) -> Response {
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

pub(super) async fn export_students(
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

pub(super) async fn export_ledger(
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
