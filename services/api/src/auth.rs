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
    // read before any lookup: a revocation committed meanwhile bumps it, and what this lookup
    // found is then not remembered
    let epoch = st
        .cache
        .auth_epoch
        .load(std::sync::atomic::Ordering::SeqCst);
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
                epoch,
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
                epoch,
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

fn remember(st: &AppState, epoch: u64, key: String, s: Staff) -> Staff {
    let mut m = st.cache.auth.lock().unwrap_or_else(|e| e.into_inner());
    if st
        .cache
        .auth_epoch
        .load(std::sync::atomic::Ordering::SeqCst)
        != epoch
    {
        return s; // credentials were revoked during the lookup: do not cache
    }
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

/// Failed-login counts per username and per address within the window of
/// [`crate::LoginLimits`] (in memory; see there).
///
/// An attempt is counted as a failure *before* the password is checked ([`LoginLimiter::begin`],
/// one lock for the check and the count), so concurrent guesses cannot all slip under the
/// limit while the slow argon2 checks run; a successful login then takes its provisional count
/// back ([`LoginLimiter::succeeded`]) and resets its username.
#[derive(Default)]
pub(crate) struct LoginLimiter {
    failures: std::sync::Mutex<
        std::collections::HashMap<String, std::collections::VecDeque<std::time::Instant>>,
    >,
}

/// The counter keys of one login attempt and the instant it was counted at.
pub(crate) struct LoginAttempt {
    keys: Vec<(String, u32)>,
    at: std::time::Instant,
}

impl LoginLimiter {
    /// The counter keys of a login attempt with their limits: the username (trimmed, lower
    /// case) and, when known, the client address.
    fn keys(limits: &crate::LoginLimits, username: &str, ip: Option<&str>) -> Vec<(String, u32)> {
        let user: String = username.trim().chars().take(64).collect();
        let mut k = vec![(
            format!("u:{}", user.to_lowercase()),
            limits.max_failures_per_user,
        )];
        if let Some(ip) = ip {
            k.push((format!("ip:{ip}"), limits.max_failures_per_ip));
        }
        k
    }

    /// Starts a login attempt: `Err(seconds)` while the username or the address is at its
    /// limit (how long until it no longer is; nothing counted), else the attempt is counted
    /// as a failure until [`LoginLimiter::succeeded`] says otherwise.
    pub fn begin(
        &self,
        limits: &crate::LoginLimits,
        username: &str,
        ip: Option<&str>,
    ) -> Result<LoginAttempt, u64> {
        let keys = Self::keys(limits, username, ip);
        let window = limits.window;
        let now = std::time::Instant::now();
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = std::time::Duration::ZERO;
        for (k, max) in &keys {
            let Some(q) = m.get_mut(k) else { continue };
            while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
                q.pop_front();
            }
            let max = *max as usize;
            if max > 0 && q.len() >= max {
                // under the limit again when the failure `max` places from the newest expires
                let t = q[q.len() - max];
                wait = wait.max(window.saturating_sub(now.duration_since(t)));
            }
        }
        if !wait.is_zero() {
            return Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        }
        if m.len() > 100_000 {
            m.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        for (k, max) in &keys {
            if *max == 0 {
                continue; // limit off: nothing to count
            }
            let q = m.entry(k.clone()).or_default();
            q.push_back(now);
            while q.len() > *max as usize {
                q.pop_front();
            }
        }
        Ok(LoginAttempt { keys, at: now })
    }

    /// The attempt's credentials were right: its username's failures are forgotten, and its
    /// provisional count against the address is taken back (earlier failures from the address
    /// stay counted).
    pub fn succeeded(&self, a: LoginAttempt) {
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for (i, (k, _)) in a.keys.iter().enumerate() {
            if i == 0 {
                m.remove(k);
                continue;
            }
            if let Some(q) = m.get_mut(k) {
                if let Some(p) = q.iter().rposition(|t| *t == a.at) {
                    q.remove(p);
                }
                if q.is_empty() {
                    m.remove(k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LoginLimits;
    use std::time::Duration;

    fn limits(user: u32, ip: u32, window_ms: u64) -> LoginLimits {
        LoginLimits {
            max_failures_per_user: user,
            max_failures_per_ip: ip,
            window: Duration::from_millis(window_ms),
        }
    }

    #[test]
    fn counts_failures_per_user_and_address_and_success_resets_the_user() {
        let l = LoginLimiter::default();
        let lim = limits(3, 5, 60_000);
        for _ in 0..3 {
            l.begin(&lim, "Boss", Some("10.0.0.1")).unwrap();
        }
        // the username is at its limit, whatever the case or the address
        let wait = l.begin(&lim, " boss", Some("10.0.0.2")).err().unwrap();
        assert!((59..=60).contains(&wait), "{wait}");
        // another user from the first address: 2 more before the address is at 5
        l.begin(&lim, "ann", Some("10.0.0.1")).unwrap();
        let a = l.begin(&lim, "ann", Some("10.0.0.1")).unwrap();
        // a success takes its own count back but not the address's earlier failures
        l.succeeded(a);
        l.begin(&lim, "ann", Some("10.0.0.1")).unwrap();
        assert!(l.begin(&lim, "carl", Some("10.0.0.1")).is_err());
        assert!(l.begin(&lim, "carl", Some("10.0.0.3")).is_ok());
        // a success resets the username's failures
        let l = LoginLimiter::default();
        for _ in 0..2 {
            l.begin(&lim, "dora", None).unwrap();
        }
        let ok = l.begin(&lim, "dora", None).unwrap();
        l.succeeded(ok);
        for _ in 0..3 {
            l.begin(&lim, "dora", None).unwrap();
        }
        assert!(l.begin(&lim, "dora", None).is_err());
    }

    #[test]
    fn failures_leave_the_window_and_zero_turns_a_limit_off() {
        let l = LoginLimiter::default();
        let lim = limits(2, 0, 150);
        l.begin(&lim, "eve", Some("10.0.0.9")).unwrap();
        l.begin(&lim, "eve", Some("10.0.0.9")).unwrap();
        assert_eq!(l.begin(&lim, "eve", Some("10.0.0.9")).err(), Some(1));
        std::thread::sleep(Duration::from_millis(200));
        assert!(l.begin(&lim, "eve", Some("10.0.0.9")).is_ok());
        // no per-address limit: many users from one address
        for u in 0..50 {
            l.begin(&lim, &format!("u{u}"), Some("10.0.0.9")).unwrap();
        }
        let off = limits(0, 0, 60_000);
        for _ in 0..50 {
            l.begin(&off, "eve", None).unwrap();
        }
    }
}
