//! Authentication (session cookie or bearer API token), CSRF, roles and campus scoping.
//!
//! * Passwords: argon2id PHC strings (random 16-byte salt).
//! * Sessions: a random 32-byte token in an `HttpOnly; SameSite=Strict` cookie; only its
//!   SHA-256 is stored. Each session has a CSRF token: state-changing API requests that
//!   authenticate with the cookie must send it in `X-CSRF-Token`; web forms send it in `_csrf`.
//! * API tokens (`rc_…`): bearer tokens for integrations, stored as SHA-256; no CSRF (not sent
//!   by browsers automatically).

use crate::error::ApiError;
use crate::AppState;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;
use rollcall_ledger::{Actor, CampusScope, Role, StaffAccount};
use sha2::{Digest, Sha256};

pub const SESSION_COOKIE: &str = "rollcall_session";

/// Hashes a password with argon2id (default parameters: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    if password.len() < 8 {
        return Err(ApiError::invalid("password: at least 8 characters"));
    }
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| ApiError::internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Checks a password against a stored PHC string (constant time in the hash comparison).
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// A random token (hex of 32 bytes), with a prefix.
pub fn new_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    format!("{prefix}{}", hex::encode(b))
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The authenticated staff member of a request.
#[derive(Debug, Clone)]
pub struct Staff {
    pub account: StaffAccount,
    /// CSRF token of the session (`None` for API tokens).
    pub csrf: Option<String>,
    pub session_hash: Option<String>,
    pub ip: Option<String>,
}

impl Staff {
    pub fn role(&self) -> Role {
        self.account.role
    }
    pub fn actor(&self) -> Actor {
        Actor {
            name: self.account.username.clone(),
            role: self.account.role.as_str().into(),
            ip: self.ip.clone(),
        }
    }
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.account.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden_role(self.account.role.as_str()))
        }
    }
    pub fn allows_campus(&self, campus: &str) -> bool {
        self.account.campuses.allows(campus)
    }
    pub fn campus(&self, campus: &str) -> Result<(), ApiError> {
        if self.allows_campus(campus) {
            Ok(())
        } else {
            Err(ApiError::forbidden_campus(campus))
        }
    }
    /// Any of `campuses` in scope (a student belonging to several campuses).
    pub fn any_campus(&self, campuses: &[String]) -> Result<(), ApiError> {
        match &self.account.campuses {
            CampusScope::All => Ok(()),
            _ if campuses.iter().any(|c| self.allows_campus(c)) => Ok(()),
            _ => Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden_campus",
                "this record belongs to no campus of your account",
            )),
        }
    }
    pub fn is_all_campuses(&self) -> bool {
        matches!(self.account.campuses, CampusScope::All)
    }
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn client_ip(req: &Request) -> Option<String> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// Who is calling: bearer token first, then the session cookie. `None`: anonymous.
pub async fn authenticate(
    st: &AppState,
    headers: &HeaderMap,
    ip: Option<String>,
) -> Result<Option<Staff>, ApiError> {
    if let Some(h) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = h.to_str().map_err(|_| ApiError::unauthenticated())?.trim();
        let Some(tok) = v.strip_prefix("Bearer ").map(str::trim) else {
            return Err(ApiError::unauthenticated());
        };
        let key = format!("b:{}", token_hash(tok));
        if let Some(s) = cached(st, &key, &ip) {
            return Ok(Some(s));
        }
        let acc = st.store.api_token_account(&key[2..]).await?;
        return match acc {
            Some(account) => Ok(Some(remember(
                st,
                key,
                Staff {
                    account,
                    csrf: None,
                    session_hash: None,
                    ip,
                },
            ))),
            None => Err(ApiError::unauthenticated()),
        };
    }
    if let Some(tok) = cookie(headers, SESSION_COOKIE) {
        let hash = token_hash(&tok);
        let key = format!("s:{hash}");
        if let Some(s) = cached(st, &key, &ip) {
            return Ok(Some(s));
        }
        if let Some(s) = st.store.session(&hash).await? {
            return Ok(Some(remember(
                st,
                key,
                Staff {
                    account: s.account,
                    csrf: Some(s.csrf),
                    session_hash: Some(hash),
                    ip,
                },
            )));
        }
    }
    Ok(None)
}

fn cached(st: &AppState, key: &str, ip: &Option<String>) -> Option<Staff> {
    let m = st.cache.auth.lock().unwrap_or_else(|e| e.into_inner());
    match m.get(key) {
        Some((at, s)) if at.elapsed() < crate::AUTH_TTL => {
            let mut s = s.clone();
            s.ip = ip.clone();
            Some(s)
        }
        _ => None,
    }
}

fn remember(st: &AppState, key: String, s: Staff) -> Staff {
    let mut m = st.cache.auth.lock().unwrap_or_else(|e| e.into_inner());
    if m.len() > 10_000 {
        m.retain(|_, (at, _)| at.elapsed() < crate::AUTH_TTL);
    }
    m.insert(key, (std::time::Instant::now(), s.clone()));
    s
}

/// Route guard: authenticates, checks CSRF on state-changing cookie requests, checks the
/// route's roles, then hands the [`Staff`] to the handler (request extension). Runs before
/// any body is read, so a denied request never reaches validation or the store.
pub async fn guard(
    State((st, roles)): State<(AppState, &'static [Role])>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let ip = client_ip(&req);
    let staff = authenticate(&st, req.headers(), ip)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method {
        if let Some(csrf) = &staff.csrf {
            let sent = req
                .headers()
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !constant_eq(sent.as_bytes(), csrf.as_bytes()) {
                return Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "csrf",
                    "missing or wrong X-CSRF-Token header for a cookie-authenticated change",
                ));
            }
        }
    }
    staff.require(roles)?;
    req.extensions_mut().insert(staff);
    let resp = next.run(req).await;
    if unsafe_method {
        st.cache.clear_boards();
    }
    Ok(resp)
}

pub fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Role sets used by the routes (documented per route in the OpenAPI document).
pub mod roles {
    use rollcall_ledger::Role::{self, *};
    pub const ANY: &[Role] = &[Admin, Manager, Teacher, FrontDesk, Viewer];
    pub const DESK: &[Role] = &[Admin, Manager, Teacher, FrontDesk];
    pub const REVIEW: &[Role] = &[Admin, Manager, FrontDesk];
    pub const ALERTS: &[Role] = &[Admin, Manager, Teacher];
    pub const ENROLL: &[Role] = &[Admin, Manager, FrontDesk];
    pub const MONEY: &[Role] = &[Admin, Manager];
    pub const MANAGE: &[Role] = &[Admin, Manager];
    pub const ADMIN: &[Role] = &[Admin];
}

/// The peer address when the server runs with connect info (`rollcall serve` does).
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        ))
    }
}
