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
use rollcall_ledger::{GuardianDetail, NewGuardian, NewStudent, RegistrationConsent, StudentState};
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
    /// `active`, `suspended` (休学) or `left`.
    state: StudentStateDoc,
    guardians: Vec<GuardianDoc>,
    #[schema(value_type = Vec<crate::schema::ConsentView>)]
    consents: Vec<rollcall_ledger::ConsentView>,
    classes: Vec<EnrolledClassDoc>,
    #[schema(value_type = crate::schema::BalanceView)]
    balance: rollcall_ledger::BalanceView,
}

/// A class the student is enrolled in.
#[derive(Serialize, ToSchema)]
pub(crate) struct EnrolledClassDoc {
    class_id: String,
    name: String,
    campus_id: String,
    teacher: String,
    enrolled_at: chrono::DateTime<Utc>,
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
        state: state_doc(st.store.student_state(&id).await?),
        guardians: st
            .store
            .guardian_details(&id)
            .await?
            .into_iter()
            .map(guardian_doc)
            .collect(),
        consents: st.store.consents(&id).await?,
        classes: st
            .store
            .enrolled_classes(&id)
            .await?
            .into_iter()
            .map(|c| EnrolledClassDoc {
                class_id: c.class_id,
                name: c.name,
                campus_id: c.campus_id,
                teacher: c.teacher,
                enrolled_at: c.enrolled_at,
            })
            .collect(),
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
    // at most two, as at registration
    if st.store.guardian_details(&id).await?.len() >= rollcall_ledger::MAX_GUARDIANS {
        return Err(ApiError::invalid(format!(
            "guardians: at most {} guardians per student, as at registration",
            rollcall_ledger::MAX_GUARDIANS
        )));
    }
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

// -------------------------------------------------------------------------------------------
// the front desk's student records (issue 21 item 1): registration with guardians and consent
// in one step, edits, suspension (休学) and resumption, leaving the school, attendance history
// -------------------------------------------------------------------------------------------

/// Notices a guardian may receive (`GuardianPrefs` events).
pub(crate) const GUARDIAN_NOTICES: &[&str] = &[
    "arrival",
    "absence",
    "absence_streak",
    "low_balance",
    "expiring_package",
    "zero_balance",
];

/// Channels a guardian may be reached on.
pub(crate) const GUARDIAN_CHANNELS: &[&str] = &["sms", "wechat", "email"];

/// A guardian as entered on the registration or edit form.
#[derive(Deserialize, ToSchema, Default, Clone)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct GuardianIn {
    /// Left out: `<student>-g1`, `<student>-g2`, … (registration only).
    pub(crate) id: Option<String>,
    pub(crate) name: String,
    pub(crate) phone: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) wechat_id: Option<String>,
    /// `zh` or `en` (default `zh`).
    pub(crate) language: Option<String>,
    /// Channels: `sms`, `wechat`, `email` (none: the school's default channels).
    pub(crate) channels: Vec<String>,
    /// Notices they get: `arrival`, `absence`, `absence_streak`, `low_balance`,
    /// `expiring_package`, `zero_balance` (none given: every notice).
    pub(crate) notices: Option<Vec<String>>,
}

/// A guardian with every contact detail.
#[derive(Serialize, ToSchema)]
pub(crate) struct GuardianDoc {
    id: String,
    student_id: String,
    name: String,
    phone: Option<String>,
    email: Option<String>,
    wechat_id: Option<String>,
    language: String,
    /// As stored: JSON `{"channels": [...], "events": [...]}` or a comma-separated list.
    notify_prefs: String,
}

/// A student's status: `active`, `suspended` (休学) or `left`, since when and why.
#[derive(Serialize, ToSchema)]
pub(crate) struct StudentStateDoc {
    student_id: String,
    #[schema(value_type = String)]
    status: String,
    since: Option<chrono::DateTime<Utc>>,
    reason: Option<String>,
}

/// An optional text that is empty when left blank (a form's empty field).
pub(crate) fn blank_none(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The stored notification preferences of a guardian's channels and notices, checked.
pub(crate) fn notify_prefs(channels: &[String], notices: Option<&[String]>) -> ApiResult<String> {
    for c in channels {
        if !GUARDIAN_CHANNELS.contains(&c.as_str()) {
            return Err(ApiError::invalid(format!(
                "channels: {c:?} is not one of {}",
                GUARDIAN_CHANNELS.join(", ")
            )));
        }
    }
    if let Some(n) = notices {
        for k in n {
            if !GUARDIAN_NOTICES.contains(&k.as_str()) {
                return Err(ApiError::invalid(format!(
                    "notices: {k:?} is not one of {}",
                    GUARDIAN_NOTICES.join(", ")
                )));
            }
        }
    }
    let v = json!({"channels": channels, "events": notices});
    let s = v.to_string();
    // the notifier reads them back the same way
    rollcall_ledger::GuardianPrefs::parse(&s)?;
    Ok(s)
}

impl GuardianIn {
    /// The guardian of `student` with id `id`, checked by the ledger when written.
    pub(crate) fn detail(&self, student: &str, id: String) -> ApiResult<GuardianDetail> {
        let language = blank_none(self.language.clone()).unwrap_or_else(|| "zh".into());
        Ok(GuardianDetail {
            id,
            student_id: student.into(),
            name: self.name.trim().to_string(),
            phone: blank_none(self.phone.clone()),
            email: blank_none(self.email.clone()),
            wechat_id: blank_none(self.wechat_id.clone()),
            language,
            notify_prefs: notify_prefs(&self.channels, self.notices.as_deref())?,
        })
    }
}

/// A consent decision made at registration by one of the new guardians.
#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsentIn {
    /// Default `face_recognition`.
    pub(crate) kind: Option<String>,
    pub(crate) granted: bool,
    /// Which of the registration's guardians decided: their index (0 or 1, default 0).
    pub(crate) given_by: Option<usize>,
    /// The signed form's reference (required for a grant).
    pub(crate) document_ref: Option<String>,
    /// When a grant ends by itself (the signed form's expiry; default: until withdrawn).
    #[serde(default)]
    pub(crate) expires_at: Option<chrono::DateTime<Utc>>,
}

/// A student registered with their guardians (1 or 2) and the consent record, in one step.
#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct Registration {
    /// Left out: the next free `S-0001`-style id.
    pub(crate) id: Option<String>,
    pub(crate) name: String,
    pub(crate) home_campus_id: String,
    pub(crate) guardians: Vec<GuardianIn>,
    pub(crate) consent: Option<ConsentIn>,
}

/// The registered student, guardians and consent decisions.
#[derive(Serialize, ToSchema)]
pub(crate) struct Registered {
    #[schema(value_type = crate::schema::StudentView)]
    student: rollcall_ledger::StudentView,
    guardians: Vec<GuardianDoc>,
    #[schema(value_type = Vec<crate::schema::ConsentView>)]
    consents: Vec<rollcall_ledger::ConsentView>,
}

fn guardian_doc(g: GuardianDetail) -> GuardianDoc {
    GuardianDoc {
        id: g.id,
        student_id: g.student_id,
        name: g.name,
        phone: g.phone,
        email: g.email,
        wechat_id: g.wechat_id,
        language: g.language,
        notify_prefs: g.notify_prefs,
    }
}

pub(crate) fn state_doc(s: StudentState) -> StudentStateDoc {
    StudentStateDoc {
        student_id: s.student_id,
        status: s.status.as_str().into(),
        since: s.since,
        reason: s.reason,
    }
}

/// A campus of the school (a form's unknown campus is the input's mistake: 422).
async fn known_campus(st: &AppState, campus: &str) -> ApiResult<()> {
    if st.store.campuses().await?.iter().any(|(c, _)| c == campus) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "home_campus_id: no campus {campus:?}"
        )))
    }
}

/// Registers a student, guardians and consent in one transaction (the API and the staff app's
/// form): the campus in the caller's reach, every field checked with its own message.
pub(crate) async fn register(st: &AppState, staff: &Staff, r: &Registration) -> ApiResult<String> {
    staff.require(roles::ENROLL)?;
    let campus = r.home_campus_id.trim();
    if campus.is_empty() {
        return Err(ApiError::invalid(
            "home_campus_id: choose the student's campus",
        ));
    }
    staff.campus(campus)?;
    known_campus(st, campus).await?;
    if r.guardians.is_empty() || r.guardians.len() > 2 {
        return Err(ApiError::invalid("guardians: one or two guardians"));
    }
    let id = match blank_none(r.id.clone()) {
        Some(id) => id,
        None => st.store.next_student_id().await?,
    };
    let guardians = r
        .guardians
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let gid = blank_none(g.id.clone()).unwrap_or_else(|| format!("{id}-g{}", i + 1));
            g.detail(&id, gid)
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let consent = match &r.consent {
        Some(c) => {
            let by = c.given_by.unwrap_or(0);
            let g = guardians.get(by).ok_or_else(|| {
                ApiError::invalid("consent.given_by: the index of one of the guardians (0 or 1)")
            })?;
            Some(RegistrationConsent {
                kind: blank_none(c.kind.clone())
                    .unwrap_or_else(|| rollcall_domain::privacy::FACE_CONSENT.into()),
                granted: c.granted,
                given_by: g.id.clone(),
                document_ref: blank_none(c.document_ref.clone()),
                expires_at: c.expires_at,
            })
        }
        None => None,
    };
    let n = NewStudent {
        id: id.clone(),
        name: r.name.trim().to_string(),
        home_campus_id: Some(campus.to_string()),
    };
    run(
        staff,
        st.store.register_student(&n, &guardians, consent.as_ref()),
    )
    .await?;
    Ok(id)
}

pub(super) async fn register_student(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(r): JsonBody<Registration>,
) -> ApiResult<(StatusCode, Json<Registered>)> {
    let id = register(&st, &staff, &r).await?;
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            student: st.store.student(&id).await?,
            guardians: st
                .store
                .guardian_details(&id)
                .await?
                .into_iter()
                .map(guardian_doc)
                .collect(),
            consents: st.store.consents(&id).await?,
        }),
    ))
}

/// A student's new name and home campus (a field left out: unchanged).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StudentEdit {
    pub(crate) name: Option<String>,
    pub(crate) home_campus_id: Option<String>,
}

/// The student after the change, with their status.
#[derive(Serialize, ToSchema)]
pub(crate) struct StudentChanged {
    #[schema(value_type = crate::schema::StudentView)]
    student: rollcall_ledger::StudentView,
    state: StudentStateDoc,
}

/// Changes a student's name or home campus: the student and the new campus in the caller's
/// reach.
pub(crate) async fn edit(st: &AppState, staff: &Staff, id: &str, e: &StudentEdit) -> ApiResult<()> {
    student_in_scope(st, staff, id).await?;
    staff.require(roles::ENROLL)?;
    let name = blank_none(e.name.clone());
    let campus = blank_none(e.home_campus_id.clone());
    if name.is_none() && campus.is_none() {
        return Err(ApiError::invalid("name: give a new name or home campus"));
    }
    if let Some(c) = &campus {
        staff.campus(c)?;
        known_campus(st, c).await?;
    }
    run(
        staff,
        st.store
            .update_student(id, name.as_deref(), campus.as_deref()),
    )
    .await?;
    Ok(())
}

async fn changed(st: &AppState, id: &str) -> ApiResult<Json<StudentChanged>> {
    Ok(Json(StudentChanged {
        student: st.store.student(id).await?,
        state: state_doc(st.store.student_state(id).await?),
    }))
}

pub(super) async fn update_student(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(e): JsonBody<StudentEdit>,
) -> ApiResult<Json<StudentChanged>> {
    edit(&st, &staff, &id, &e).await?;
    changed(&st, &id).await
}

/// The guardian after the change.
#[derive(Serialize, ToSchema)]
pub(crate) struct GuardianChanged {
    guardian: GuardianDoc,
}

/// Replaces a guardian's details (name, contacts, language, notices).
pub(crate) async fn edit_guardian(
    st: &AppState,
    staff: &Staff,
    id: &str,
    guardian: &str,
    g: &GuardianIn,
) -> ApiResult<GuardianDetail> {
    student_in_scope(st, staff, id).await?;
    staff.require(roles::ENROLL)?;
    let d = g.detail(id, guardian.to_string())?;
    run(staff, st.store.update_guardian(&d)).await?;
    Ok(d)
}

pub(super) async fn update_guardian(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path((id, guardian)): Path<(String, String)>,
    JsonBody(g): JsonBody<GuardianIn>,
) -> ApiResult<Json<GuardianChanged>> {
    let d = edit_guardian(&st, &staff, &id, &guardian, &g).await?;
    Ok(Json(GuardianChanged {
        guardian: guardian_doc(d),
    }))
}

/// Adds a guardian with every detail (the staff app's edit page): the student in reach, at
/// most [`rollcall_ledger::MAX_GUARDIANS`] guardians, the id `<student>-g<n>` (the first free
/// `n`); audited.
pub(crate) async fn add_guardian_for(
    st: &AppState,
    staff: &Staff,
    id: &str,
    g: &GuardianIn,
) -> ApiResult<GuardianDetail> {
    student_in_scope(st, staff, id).await?;
    staff.require(roles::ENROLL)?;
    let taken: Vec<String> = st
        .store
        .guardian_details(id)
        .await?
        .into_iter()
        .map(|g| g.id)
        .collect();
    let gid = match blank_none(g.id.clone()) {
        Some(gid) => gid,
        None => (1..)
            .map(|n| format!("{id}-g{n}"))
            .find(|c| !taken.contains(c))
            .unwrap_or_default(),
    };
    let d = g.detail(id, gid)?;
    run(staff, st.store.add_guardian_detail(&d)).await?;
    Ok(d)
}

/// Removes one of a student's guardians (a student keeps at least one): the student in reach;
/// audited.
pub(crate) async fn remove_guardian_for(
    st: &AppState,
    staff: &Staff,
    id: &str,
    guardian: &str,
) -> ApiResult<GuardianDetail> {
    student_in_scope(st, staff, id).await?;
    staff.require(roles::ENROLL)?;
    Ok(run(staff, st.store.remove_guardian(id, guardian)).await?)
}

/// The guardian removed.
#[derive(Serialize, ToSchema)]
pub(crate) struct GuardianRemoved {
    removed: GuardianDoc,
}

pub(super) async fn remove_guardian(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path((id, guardian)): Path<(String, String)>,
) -> ApiResult<Json<GuardianRemoved>> {
    let d = remove_guardian_for(&st, &staff, &id, &guardian).await?;
    Ok(Json(GuardianRemoved {
        removed: guardian_doc(d),
    }))
}

/// Why the student is suspended or leaves (optional).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StatusChange {
    pub(crate) reason: Option<String>,
}

/// The student's status after the change.
#[derive(Serialize, ToSchema)]
pub(crate) struct StatusChanged {
    state: StudentStateDoc,
}

pub(super) async fn suspend(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(c): JsonBody<StatusChange>,
) -> ApiResult<Json<StatusChanged>> {
    student_in_scope(&st, &staff, &id).await?;
    let s = run(&staff, st.store.suspend_student(&id, c.reason.as_deref())).await?;
    Ok(Json(StatusChanged {
        state: state_doc(s),
    }))
}

/// A package whose expiry the suspension moved.
#[derive(Serialize, ToSchema)]
pub(crate) struct ExpiryMovedDoc {
    package_id: String,
    before: chrono::DateTime<Utc>,
    after: chrono::DateTime<Utc>,
}

/// The resumed student: how long the suspension lasted and the packages whose expiry moved by
/// that much.
#[derive(Serialize, ToSchema)]
pub(crate) struct ResumedDoc {
    student_id: String,
    suspended_since: chrono::DateTime<Utc>,
    resumed_at: chrono::DateTime<Utc>,
    packages: Vec<ExpiryMovedDoc>,
}

pub(crate) fn resumed_doc(r: rollcall_ledger::Resumed) -> ResumedDoc {
    ResumedDoc {
        student_id: r.student_id,
        suspended_since: r.suspended_since,
        resumed_at: r.resumed_at,
        packages: r
            .packages
            .into_iter()
            .map(|p| ExpiryMovedDoc {
                package_id: p.package_id,
                before: p.before,
                after: p.after,
            })
            .collect(),
    }
}

pub(super) async fn resume(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<ResumedDoc>> {
    student_in_scope(&st, &staff, &id).await?;
    let r = run(&staff, st.store.resume_student(&id)).await?;
    Ok(Json(resumed_doc(r)))
}

/// What leaving the school did; the face data goes on the privacy rules' schedule.
#[derive(Serialize, ToSchema)]
pub(crate) struct LeftDoc {
    student_id: String,
    left_at: chrono::DateTime<Utc>,
    /// Classes the student was unenrolled from.
    classes: Vec<String>,
    /// Make-up bookings of lessons not started yet, cancelled.
    makeups_cancelled: Vec<String>,
    /// When the face data is erased.
    biometric_erasure: String,
}

pub(crate) const ERASURE_SCHEDULE: &str = "by the retention job when the inactivity period (ROLLCALL_RETENTION_INACTIVE_MONTHS since the last attendance, check-in or consent decision) is up; at once through POST /api/v1/students/{id}/erase (an admin) or a consent withdrawal";

pub(super) async fn leave(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(c): JsonBody<StatusChange>,
) -> ApiResult<Json<LeftDoc>> {
    student_in_scope(&st, &staff, &id).await?;
    let l = run(&staff, st.store.leave_school(&id, c.reason.as_deref())).await?;
    Ok(Json(LeftDoc {
        student_id: l.student_id,
        left_at: l.left_at,
        classes: l.classes,
        makeups_cancelled: l.makeups_cancelled,
        biometric_erasure: ERASURE_SCHEDULE.into(),
    }))
}

/// A lesson of a student's attendance history.
#[derive(Serialize, ToSchema)]
pub(crate) struct AttendanceRecordDoc {
    lesson_id: String,
    class_id: String,
    class_name: String,
    campus_id: String,
    start: chrono::DateTime<Utc>,
    /// `present`, `late`, `absent`, `excused` or `left_early`.
    status: String,
    source: Option<String>,
    at: chrono::DateTime<Utc>,
}

/// A student's attendance of lessons in `[from, to)`, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct StudentAttendance {
    student_id: String,
    from: chrono::DateTime<Utc>,
    to: chrono::DateTime<Utc>,
    lessons: Vec<AttendanceRecordDoc>,
}

#[derive(Deserialize)]
pub(crate) struct RangeQuery {
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) status: Option<String>,
}

/// The bounds of `from`..`to` (school dates, `to` included); default: the last 90 days.
pub(crate) fn range(
    st: &AppState,
    q: &RangeQuery,
) -> ApiResult<(chrono::DateTime<Utc>, chrono::DateTime<Utc>)> {
    let from = blank_none(q.from.clone());
    let to = blank_none(q.to.clone());
    let (_, end) = super::day_bounds(st, to.as_deref())?;
    let start = match from {
        Some(f) => super::day_bounds(st, Some(&f))?.0,
        None => end - chrono::Duration::days(90),
    };
    if start >= end {
        return Err(ApiError::invalid(
            "from: the first day must not be after the last",
        ));
    }
    if end - start > chrono::Duration::days(3700) {
        return Err(ApiError::invalid("from: at most ten years at once"));
    }
    Ok((start, end))
}

/// A student's attendance history in the range, of one status when `status` is given.
pub(crate) async fn history(
    st: &AppState,
    id: &str,
    q: &RangeQuery,
) -> ApiResult<(
    chrono::DateTime<Utc>,
    chrono::DateTime<Utc>,
    Vec<rollcall_ledger::AttendanceRecord>,
)> {
    let (from, to) = range(st, q)?;
    let status = blank_none(q.status.clone());
    if let Some(s) = &status {
        if rollcall_domain::ledger::AttendanceStatus::parse(s).is_none() {
            return Err(ApiError::invalid(format!("status: {s:?} is not a status")));
        }
    }
    let v = st
        .store
        .attendance_history(id, from, to)
        .await?
        .into_iter()
        .filter(|a| status.as_ref().is_none_or(|s| &a.status == s))
        .collect();
    Ok((from, to, v))
}

pub(super) async fn student_attendance(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Json<StudentAttendance>> {
    student_in_scope(&st, &staff, &id).await?;
    let (from, to, v) = history(&st, &id, &q).await?;
    Ok(Json(StudentAttendance {
        student_id: id,
        from,
        to,
        lessons: v
            .into_iter()
            .map(|a| AttendanceRecordDoc {
                lesson_id: a.lesson_id,
                class_id: a.class_id,
                class_name: a.class_name,
                campus_id: a.campus_id,
                start: a.start,
                status: a.status,
                source: a.source,
                at: a.at,
            })
            .collect(),
    }))
}
