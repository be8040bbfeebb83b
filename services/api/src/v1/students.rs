//! Students, their guardians and consent decisions, and enrollment photos.

use super::{jpeg, run, student_in_scope};
use crate::auth::{roles, Staff};
use crate::error::{ApiError, ApiResult};
use crate::{AppState, JsonBody};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use chrono::Utc;
use rollcall_domain::photo::PhotoFormat;
use rollcall_ledger::{NewGuardian, NewStudent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

/// Students of the caller's campuses.
#[derive(Serialize, ToSchema)]
pub(super) struct StudentList {
    #[schema(value_type = Vec<crate::schema::StudentView>)]
    students: Vec<rollcall_ledger::StudentView>,
}

/// The student registered.
#[derive(Serialize, ToSchema)]
pub(super) struct CreatedStudent {
    #[schema(value_type = crate::schema::NewStudent)]
    student: NewStudent,
}

/// A student with guardians, consent decisions and balance.
#[derive(Serialize, ToSchema)]
pub(super) struct StudentDetail {
    #[schema(value_type = crate::schema::StudentView)]
    student: rollcall_ledger::StudentView,
    #[schema(value_type = Vec<crate::schema::GuardianView>)]
    guardians: Vec<rollcall_ledger::GuardianView>,
    #[schema(value_type = Vec<crate::schema::ConsentView>)]
    consents: Vec<rollcall_ledger::ConsentView>,
    #[schema(value_type = crate::schema::BalanceView)]
    balance: rollcall_ledger::BalanceView,
}

/// The guardian added.
#[derive(Serialize, ToSchema)]
pub(super) struct CreatedGuardian {
    #[schema(value_type = crate::schema::NewGuardian)]
    guardian: NewGuardian,
}

/// The student's consent decisions after the new one; `erasure`: the erasure receipt when it
/// withdrew face-recognition consent.
#[derive(Serialize, ToSchema)]
pub(super) struct ConsentsRecorded {
    #[schema(value_type = Vec<crate::schema::ConsentView>)]
    consents: Vec<rollcall_ledger::ConsentView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    erasure: Option<Value>,
}

/// An enrollment photo's dimensions and the quality and duplicate verdict.
#[derive(Serialize, ToSchema)]
pub(super) struct PhotoEnrolled {
    student_id: String,
    filename: Option<String>,
    width: u32,
    height: u32,
    verdict: Value,
}

pub(super) async fn list_students(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
) -> ApiResult<Json<StudentList>> {
    let all = st.store.students().await?;
    let v: Vec<_> = all
        .into_iter()
        .filter(|s| staff.is_all_campuses() || s.campuses.iter().any(|c| staff.allows_campus(c)))
        .collect();
    Ok(Json(StudentList { students: v }))
}

/// A new student.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateStudent {
    id: String,
    name: String,
    home_campus_id: Option<String>,
}

pub(super) async fn create_student(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(c): JsonBody<CreateStudent>,
) -> ApiResult<(StatusCode, Json<CreatedStudent>)> {
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
    Ok((StatusCode::CREATED, Json(CreatedStudent { student: n })))
}

pub(super) async fn get_student(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<StudentDetail>> {
    student_in_scope(&st, &staff, &id).await?;
    let s = st.store.student(&id).await?;
    Ok(Json(StudentDetail {
        student: s,
        guardians: st.store.guardians(&id).await?,
        consents: st.store.consents(&id).await?,
        balance: st.store.balance(&id, st.store.now()).await?,
    }))
}

/// A new guardian of the student (`language` defaults to `en`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateGuardian {
    id: String,
    name: String,
    phone: Option<String>,
    email: Option<String>,
    language: Option<String>,
    notify_prefs: Option<String>,
}

pub(super) async fn add_guardian(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(g): JsonBody<CreateGuardian>,
) -> ApiResult<(StatusCode, Json<CreatedGuardian>)> {
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
    Ok((StatusCode::CREATED, Json(CreatedGuardian { guardian: g })))
}

/// A consent decision.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Consent {
    kind: String,
    granted: bool,
    /// The guardian's id (a grant must name a registered guardian of the student).
    given_by: String,
    /// Reference of the signed form (required for a grant).
    document_ref: Option<String>,
    /// When a grant ends by itself.
    expires_at: Option<chrono::DateTime<Utc>>,
}

pub(super) async fn add_consent(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(c): JsonBody<Consent>,
) -> ApiResult<(StatusCode, Json<ConsentsRecorded>)> {
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
            Json(ConsentsRecorded {
                consents: st.store.consents(&id).await?,
                erasure: Some(receipt),
            }),
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
                at: st.store.now(),
                document_ref: c.document_ref.clone(),
                expires_at: c.expires_at,
            },
        ),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(ConsentsRecorded {
            consents: st.store.consents(&id).await?,
            erasure: None,
        }),
    ))
}

fn crops_root(st: &AppState) -> std::path::PathBuf {
    st.config.data_dir.join("crops")
}

pub(super) async fn student_photo(
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
pub(super) struct UploadQuery {
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

pub(super) async fn upload_photo(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    crate::RawBody(body): crate::RawBody,
) -> ApiResult<Json<PhotoEnrolled>> {
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
    Ok(Json(PhotoEnrolled {
        student_id: id,
        filename: q.filename,
        width: w,
        height: h,
        verdict,
    }))
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
