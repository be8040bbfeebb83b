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

/// The peer address, or, when the peer is one of `ApiConfig::trusted_proxies`, the client
/// its `X-Forwarded-For` names: the right-most entry that is not itself a trusted proxy (the
/// left part of the header is whatever the client sent, so it is not believed).
pub(crate) fn client_addr(
    config: &crate::ApiConfig,
    peer: Option<std::net::IpAddr>,
    headers: &HeaderMap,
) -> Option<String> {
    let peer = peer?;
    if !config.trusted_proxies.contains(&peer) {
        return Some(peer.to_string());
    }
    let mut hops: Vec<std::net::IpAddr> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        let Ok(v) = v.to_str() else {
            return Some(peer.to_string());
        };
        for h in v.split(',') {
            match h.trim().parse() {
                Ok(ip) => hops.push(ip),
                Err(_) => return Some(peer.to_string()),
            }
        }
    }
    Some(
        hops.iter()
            .rev()
            .find(|ip| !config.trusted_proxies.contains(ip))
            .unwrap_or(&peer)
            .to_string(),
    )
}

fn peer_ip(ext: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    ext.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
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
    let ip = client_addr(&st.config, peer_ip(req.extensions()), req.headers());
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
    /// Selling packages, taking payments and asking for refunds: the front desk's money work
    /// (approving a refund stays [`MONEY`]).
    pub const SELL: &[Role] = &[Admin, Manager, FrontDesk];
    pub const MANAGE: &[Role] = &[Admin, Manager];
    pub const ADMIN: &[Role] = &[Admin];
}

/// The client's address (see [`client_addr`]: the peer, or the client a trusted proxy names)
/// when the server runs with connect info (`rollcall serve` does).
pub struct ClientIp(pub Option<String>);

impl axum::extract::FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        st: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_addr(
            &st.config,
            peer_ip(&parts.extensions),
            &parts.headers,
        )))
    }
}

/// At most this many argon2 computations at once (each takes ~19 MiB and tens of ms of a
/// core): logins queue here instead of starving the async threads and the memory.
pub(crate) const ARGON_PARALLEL: usize = 2;

/// The gate of the argon2 computations ([`ARGON_PARALLEL`]).
pub(crate) struct ArgonGate(tokio::sync::Semaphore);

impl Default for ArgonGate {
    fn default() -> Self {
        ArgonGate(tokio::sync::Semaphore::new(ARGON_PARALLEL))
    }
}

/// A hash of a password nobody has, with this build's parameters: what an unknown username's
/// password is checked against, so that the check costs the same.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("no account has this password").unwrap_or_default())
}

/// Checks `password` against `phc` (`None`: an unknown account: against [`dummy_hash`]), on
/// a blocking thread behind the [`ArgonGate`]: exactly one argon2 run per call.
pub(crate) async fn check_password(st: &AppState, password: &str, phc: Option<String>) -> bool {
    st.cache
        .password_checks
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let Ok(_permit) = st.cache.argon.0.acquire().await else {
        return false;
    };
    let pw = password.to_string();
    tokio::task::spawn_blocking(move || {
        let phc = phc.unwrap_or_else(|| dummy_hash().to_string());
        verify_password(&pw, &phc)
    })
    .await
    .unwrap_or(false)
}

/// [`hash_password`] on a blocking thread behind the [`ArgonGate`].
pub(crate) async fn hash_password_gated(st: &AppState, password: &str) -> Result<String, ApiError> {
    let _permit = st
        .cache
        .argon
        .0
        .acquire()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let pw = password.to_string();
    tokio::task::spawn_blocking(move || hash_password(&pw))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
}

/// Failed-login delays ([`crate::LoginLimits`]; in memory, per process).
///
/// Three counters per attempt: the username at this address, the username from everywhere,
/// and the address. Past a counter's free failures each further failure doubles the wait
/// before the next attempt on it (from the base delay up to the counter's cap); an attempt
/// during a wait is answered 429 with `Retry-After` and its password is not checked. There is
/// no lockout: the username's counter from everywhere is capped low (30 s by default), so a
/// stranger guessing the admin's password cannot keep the admin, at another address, out.
///
/// An attempt is counted as a failure *before* the password is checked ([`LoginLimiter::begin`],
/// one lock for the check and the count), so concurrent guesses cannot all slip through while
/// the slow argon2 checks run; a successful login takes its count back
/// ([`LoginLimiter::succeeded`]) and clears its username's counters. At most `max_entries`
/// counters are remembered: past it, expired ones and then the oldest half are forgotten.
#[derive(Default)]
pub(crate) struct LoginLimiter {
    failures: std::sync::Mutex<std::collections::HashMap<String, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: std::time::Instant,
}

/// The counters of one login attempt (key, free failures, longest delay).
pub(crate) struct LoginAttempt {
    keys: Vec<(String, u32, std::time::Duration)>,
}

impl LoginLimiter {
    fn keys(
        limits: &crate::LoginLimits,
        username: &str,
        ip: Option<&str>,
    ) -> Vec<(String, u32, std::time::Duration)> {
        let user: String = username
            .trim()
            .chars()
            .take(64)
            .collect::<String>()
            .to_lowercase();
        let ip = ip.unwrap_or("-");
        vec![
            (
                format!("ua:{user}|{ip}"),
                limits.free_per_user_address,
                limits.max_delay,
            ),
            (
                format!("u:{user}"),
                limits.free_per_user,
                limits.max_delay_per_user,
            ),
            (format!("a:{ip}"), limits.free_per_address, limits.max_delay),
        ]
    }

    /// The wait after `count` failures on a counter with `free` free failures.
    fn delay(
        limits: &crate::LoginLimits,
        count: u32,
        free: u32,
        cap: std::time::Duration,
    ) -> std::time::Duration {
        if count < free {
            return std::time::Duration::ZERO;
        }
        let doublings = (count - free).min(30);
        limits.base_delay.saturating_mul(1u32 << doublings).min(cap)
    }

    /// Starts a login attempt: `Err(seconds)` while a counter's wait runs (nothing counted),
    /// else the attempt is counted as a failure until [`LoginLimiter::succeeded`].
    pub fn begin(
        &self,
        limits: &crate::LoginLimits,
        username: &str,
        ip: Option<&str>,
    ) -> Result<LoginAttempt, u64> {
        let keys = Self::keys(limits, username, ip);
        let now = std::time::Instant::now();
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = std::time::Duration::ZERO;
        for (k, free, cap) in &keys {
            let Some(f) = m.get(k).copied() else { continue };
            let since = now.duration_since(f.last);
            if since >= limits.window {
                m.remove(k);
                continue;
            }
            let d = Self::delay(limits, f.count, *free, *cap);
            wait = wait.max(d.saturating_sub(since));
        }
        if !wait.is_zero() {
            return Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        }
        if m.len() + keys.len() > limits.max_entries {
            let window = limits.window;
            m.retain(|_, f| now.duration_since(f.last) < window);
            if m.len() + keys.len() > limits.max_entries {
                let mut lasts: Vec<std::time::Instant> = m.values().map(|f| f.last).collect();
                lasts.sort_unstable();
                let cut = lasts[lasts.len() / 2];
                m.retain(|_, f| f.last > cut);
            }
        }
        for (k, _, _) in &keys {
            let f = m.entry(k.clone()).or_insert(Failures {
                count: 0,
                last: now,
            });
            f.count = f.count.saturating_add(1);
            f.last = now;
        }
        Ok(LoginAttempt { keys })
    }

    /// The attempt's credentials were right: its username's counters are cleared, and its
    /// provisional count against the address is taken back (earlier failures stay).
    pub fn succeeded(&self, a: LoginAttempt) {
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for (i, (k, _, _)) in a.keys.iter().enumerate() {
            if i < 2 {
                m.remove(k);
            } else if let Some(f) = m.get_mut(k) {
                f.count = f.count.saturating_sub(1);
                if f.count == 0 {
                    m.remove(k);
                }
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LoginLimits;
    use std::time::Duration;

    fn limits() -> LoginLimits {
        LoginLimits {
            free_per_user_address: 2,
            free_per_user: 4,
            free_per_address: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
            max_delay_per_user: Duration::from_millis(200),
            window: Duration::from_secs(60),
            max_entries: 1000,
        }
    }

    #[test]
    fn waits_grow_per_user_and_address_and_a_success_clears_the_user() {
        let l = LoginLimiter::default();
        let lim = limits();
        l.begin(&lim, "Boss", Some("10.0.0.1")).unwrap();
        l.begin(&lim, "boss ", Some("10.0.0.1")).unwrap();
        // the third try from there waits the base delay (rounded up to a second)
        assert_eq!(l.begin(&lim, " BOSS", Some("10.0.0.1")).err(), Some(1));
        // the same account from another address: not delayed (two of its four free left)
        l.begin(&lim, "boss", Some("10.0.0.2")).unwrap();
        let a = l.begin(&lim, "boss", Some("10.0.0.3")).unwrap();
        // the success clears the account's counters everywhere
        l.succeeded(a);
        std::thread::sleep(Duration::from_millis(120));
        l.begin(&lim, "boss", Some("10.0.0.1")).unwrap();
        // and the doubling: 100 ms, then 200 ms
        let l = LoginLimiter::default();
        for _ in 0..2 {
            l.begin(&lim, "eve", Some("10.0.0.9")).unwrap();
        }
        std::thread::sleep(Duration::from_millis(110));
        l.begin(&lim, "eve", Some("10.0.0.9")).unwrap();
        std::thread::sleep(Duration::from_millis(110));
        assert!(l.begin(&lim, "eve", Some("10.0.0.9")).is_err());
        std::thread::sleep(Duration::from_millis(100));
        assert!(l.begin(&lim, "eve", Some("10.0.0.9")).is_ok());
    }

    #[test]
    fn the_delay_is_capped_and_memory_is_bounded() {
        let lim = limits();
        assert_eq!(
            LoginLimiter::delay(&lim, 40, 2, lim.max_delay),
            lim.max_delay
        );
        assert_eq!(
            LoginLimiter::delay(&lim, 1, 2, lim.max_delay),
            Duration::ZERO
        );
        let l = LoginLimiter::default();
        let small = LoginLimits {
            max_entries: 90,
            free_per_address: 100_000,
            ..lim
        };
        for u in 0..1000 {
            l.begin(&small, &format!("u{u}"), Some("10.0.0.1")).unwrap();
            assert!(l.len() <= 90, "{}", l.len());
        }
    }
}
