//! Logging in and out, staff accounts, API tokens and the audit log.

use super::{require_all_campuses, run};
use crate::auth::{self, Staff};
use crate::error::{ApiError, ApiResult};
use crate::{AppState, JsonBody};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Duration;
use rollcall_ledger::{as_actor, CampusScope, NewStaff, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Credentials of a staff account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    pub username: String,
    pub password: String,
}

/// "12 second(s)" / "3 minute(s)" (`zh`: "12 秒" / "3 分钟").
pub(crate) fn wait_words(secs: u64, zh: bool) -> String {
    match (secs < 60, zh) {
        (true, false) => format!("{secs} second(s)"),
        (true, true) => format!("{secs} 秒"),
        (false, false) => format!("{} minute(s)", secs.div_ceil(60)),
        (false, true) => format!("{} 分钟", secs.div_ceil(60)),
    }
}

/// Checks credentials and opens a session; returns (cookie header, csrf, account). Failed
/// attempts are throttled per username and per address (`ApiConfig::login_limits`): over the
/// limit the answer is 429 `too_many_attempts` with `Retry-After`, without checking the
/// password.
pub(crate) async fn open_session(
    st: &AppState,
    l: &Login,
    ip: Option<String>,
) -> ApiResult<(String, String, rollcall_ledger::StaffAccount)> {
    // counted as a failure from here on unless the credentials turn out right
    let attempt = match st
        .cache
        .logins
        .begin(&st.config.login_limits, &l.username, ip.as_deref())
    {
        Ok(a) => a,
        Err(wait) => {
            tracing::warn!(ip = ?ip, "login throttled after repeated failures");
            return Err(ApiError::too_many(
                "too_many_attempts",
                format!(
                    "too many failed logins for this account or from this address; try again in {}",
                    wait_words(wait, false)
                ),
                wait,
            ));
        }
    };
    let acc = st.store.staff(&l.username).await?;
    // exactly one argon2 check whoever asks (unknown accounts against a dummy hash), off the
    // async threads: the answer's time does not tell whether the username exists
    let ok = auth::check_password(
        st,
        &l.password,
        acc.as_ref().map(|a| a.password_hash.clone()),
    )
    .await;
    let acc = match acc {
        Some(a) if ok && !a.disabled => a,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
                "wrong username or password",
            ));
        }
    };
    st.cache.logins.succeeded(attempt);
    let token = auth::new_token("");
    let csrf = auth::new_token("");
    let ttl = st.config.session_hours.max(1);
    let actor = rollcall_ledger::Actor {
        name: acc.username.clone(),
        role: acc.role.as_str().into(),
        ip,
    };
    as_actor(
        actor,
        st.store.create_session(
            &acc.username,
            &auth::token_hash(&token),
            &csrf,
            st.store.now() + Duration::hours(ttl),
        ),
    )
    .await?;
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        auth::SESSION_COOKIE,
        ttl * 3600,
        if st.config.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    Ok((cookie, csrf, acc))
}

/// A session opened: the account and the CSRF token to send (`X-CSRF-Token`) on changes.
#[derive(Serialize, ToSchema)]
pub(super) struct LoggedIn {
    username: String,
    #[schema(value_type = crate::schema::Role)]
    role: Role,
    #[schema(value_type = crate::schema::CampusScope)]
    campuses: CampusScope,
    csrf: String,
}

pub(super) async fn login(
    State(st): State<AppState>,
    auth::ClientIp(ip): auth::ClientIp,
    JsonBody(l): JsonBody<Login>,
) -> ApiResult<Response> {
    let (cookie, csrf, acc) = open_session(&st, &l, ip).await?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(LoggedIn {
            username: acc.username,
            role: acc.role,
            campuses: acc.campuses,
            csrf,
        }),
    )
        .into_response())
}

/// The session is ended.
#[derive(Serialize, ToSchema)]
pub(super) struct LoggedOut {
    logged_out: bool,
}

pub(super) async fn logout(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
) -> ApiResult<Response> {
    if let Some(h) = &staff.session_hash {
        st.cache.forget(&format!("s:{h}"));
        run(&staff, st.store.end_session(h)).await?;
    }
    Ok((
        [(
            header::SET_COOKIE,
            format!(
                "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
                auth::SESSION_COOKIE
            ),
        )],
        Json(LoggedOut { logged_out: true }),
    )
        .into_response())
}

/// The calling account and its session's CSRF token (null for an API token).
#[derive(Serialize, ToSchema)]
pub(super) struct Me {
    #[schema(value_type = crate::schema::StaffAccount)]
    account: rollcall_ledger::StaffAccount,
    csrf: Option<String>,
}

pub(super) async fn me(Extension(staff): Extension<Staff>) -> Json<Me> {
    Json(Me {
        account: staff.account,
        csrf: staff.csrf,
    })
}

/// Whether `target` (an account's campuses) lies inside the caller's campuses: an admin
/// limited to campuses sees, creates and hands tokens to such accounts only.
fn scope_within(staff: &Staff, target: &CampusScope) -> bool {
    match target {
        _ if staff.is_all_campuses() => true,
        CampusScope::All => false,
        CampusScope::Only(v) => !v.is_empty() && v.iter().all(|c| staff.allows_campus(c)),
    }
}

fn forbidden_scope() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden_campus",
        "that account reaches campuses beyond your account's",
    )
}

/// The account `username` when it lies inside the caller's campuses (404 when unknown).
async fn account_in_scope(st: &AppState, staff: &Staff, username: &str) -> ApiResult<()> {
    let acc = st
        .store
        .staff(username)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown account {username:?}")))?;
    if scope_within(staff, &acc.campuses) {
        Ok(())
    } else {
        Err(forbidden_scope())
    }
}

/// Staff accounts (within the caller's campuses).
#[derive(Serialize, ToSchema)]
pub(super) struct StaffList {
    #[schema(value_type = Vec<crate::schema::StaffAccount>)]
    staff: Vec<rollcall_ledger::StaffAccount>,
}

pub(super) async fn list_staff(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
) -> ApiResult<Json<StaffList>> {
    let v: Vec<_> = st
        .store
        .list_staff()
        .await?
        .into_iter()
        .filter(|a| scope_within(&staff, &a.campuses))
        .collect();
    Ok(Json(StaffList { staff: v }))
}

/// A new staff account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateStaff {
    username: String,
    display_name: Option<String>,
    #[schema(value_type = crate::schema::Role)]
    role: Role,
    /// `["*"]` or missing: every campus.
    campuses: Option<Vec<String>>,
    password: String,
}

pub(super) async fn create_staff(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(c): JsonBody<CreateStaff>,
) -> ApiResult<(StatusCode, Json<CreatedStaff>)> {
    let hash = auth::hash_password_gated(&st, &c.password).await?;
    let campuses = match c.campuses {
        None => CampusScope::All,
        Some(v) if v.iter().any(|c| c == "*") => CampusScope::All,
        Some(v) => CampusScope::Only(v),
    };
    if !scope_within(&staff, &campuses) {
        return Err(forbidden_scope());
    }
    let n = NewStaff {
        display_name: c.display_name.unwrap_or_else(|| c.username.clone()),
        username: c.username,
        role: c.role,
        campuses,
    };
    run(&staff, st.store.create_staff(&n, &hash)).await?;
    Ok((StatusCode::CREATED, Json(CreatedStaff { staff: n })))
}

/// The account created.
#[derive(Serialize, ToSchema)]
pub(super) struct CreatedStaff {
    #[schema(value_type = crate::schema::NewStaff)]
    staff: NewStaff,
}

/// A new API token for an account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateToken {
    username: String,
    name: String,
}

pub(super) async fn create_token(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(c): JsonBody<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    account_in_scope(&st, &staff, &c.username).await?;
    let token = auth::new_token("rc_");
    let id = auth::new_token("")[..12].to_string();
    run(
        &staff,
        st.store
            .create_api_token(&c.username, &id, &c.name, &auth::token_hash(&token)),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id,
            username: c.username,
            name: c.name,
            token,
        }),
    ))
}

/// The token created; `token` (the bearer secret) is shown this once.
#[derive(Serialize, ToSchema)]
pub(super) struct CreatedToken {
    id: String,
    username: String,
    name: String,
    token: String,
}

/// API tokens, without their secrets.
#[derive(Serialize, ToSchema)]
pub(super) struct TokenList {
    #[schema(value_type = Vec<crate::schema::ApiTokenView>)]
    tokens: Vec<rollcall_ledger::ApiTokenView>,
}

/// The token revoked.
#[derive(Serialize, ToSchema)]
pub(super) struct RevokedToken {
    #[schema(value_type = crate::schema::ApiTokenView)]
    revoked: rollcall_ledger::ApiTokenView,
}

/// The audit log, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct AuditLog {
    #[schema(value_type = Vec<crate::schema::AuditRow>)]
    audit: Vec<rollcall_ledger::AuditRow>,
}

#[derive(Deserialize)]
pub(super) struct TokenQuery {
    username: Option<String>,
}

pub(super) async fn list_tokens(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<TokenQuery>,
) -> ApiResult<Json<TokenList>> {
    let me = &staff.account.username;
    let user = if staff.role() == Role::Admin {
        q.username.filter(|u| !u.is_empty())
    } else {
        if q.username.as_ref().is_some_and(|u| u != me) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_role",
                "only an admin may list other accounts' tokens",
            ));
        }
        Some(me.clone())
    };
    let mut tokens = st.store.list_api_tokens(user.as_deref()).await?;
    if !staff.is_all_campuses() && staff.role() == Role::Admin {
        // an admin limited to campuses: the tokens of the accounts inside them (and its own)
        let accounts = st.store.list_staff().await?;
        tokens.retain(|t| {
            &t.username == me
                || accounts
                    .iter()
                    .any(|a| a.username == t.username && scope_within(&staff, &a.campuses))
        });
    }
    Ok(Json(TokenList { tokens }))
}

pub(super) async fn revoke_token(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<RevokedToken>> {
    let t = st.store.api_token(&id).await?;
    if staff.role() != Role::Admin && t.username != staff.account.username {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_role",
            "only an admin or the token's owner may revoke it",
        ));
    }
    if t.username != staff.account.username {
        account_in_scope(&st, &staff, &t.username).await?;
    }
    let t = run(&staff, st.store.revoke_api_token(&id)).await?;
    // committed: no cached credential may outlive it
    st.cache.forget_all_credentials();
    Ok(Json(RevokedToken { revoked: t }))
}

#[derive(Deserialize)]
pub(super) struct Limit {
    limit: Option<i64>,
}

pub(super) async fn audit(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<Limit>,
) -> ApiResult<Json<AuditLog>> {
    require_all_campuses(&staff)?;
    let rows = st
        .store
        .audit_rows(q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    Ok(Json(AuditLog { audit: rows }))
}
