//! rollcall-api: the HTTP API (`/api/v1`, OpenAPI at `/api/openapi.json`, docs at `/api/docs`)
//! and the staff web app (`/app`), on axum. See ARCHITECTURE.md ("HTTP API and staff app").
//!
//! Every route is registered through [`Routes::add`] with the roles that may call it; the same
//! table produces the OpenAPI document, so a mounted route is always documented. A route guard
//! authenticates (bearer API token or session cookie + CSRF), checks the role and hands the
//! [`auth::Staff`] to the handler, which checks the campus of what it touches. Changes run
//! inside [`rollcall_ledger::as_actor`], so the ledger's audit rows (same transaction as the
//! change) name the staff member, role and IP.

mod alert_text;
pub mod auth;
pub mod error;
mod openapi;
mod schema;
mod v1;
mod web;

use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
use error::ApiError;
use rollcall_ledger::{Role, Store};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

pub use auth::{hash_password, verify_password};

/// Settings of the HTTP side of `rollcall serve`.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body (uploads included), bytes. Default 10 MB.
    pub max_body_bytes: usize,
    /// `/metrics` without authentication (default true; false: admin or manager only).
    pub metrics_public: bool,
    /// Data directory (review crops under `crops/review/`, enrolled crops under `crops/`).
    pub data_dir: PathBuf,
    /// Session lifetime.
    pub session_hours: i64,
    /// Add `Secure` to the session cookie (set when served over HTTPS).
    pub secure_cookies: bool,
    /// Throttling of failed logins.
    pub login_limits: LoginLimits,
    /// Reverse proxies whose `X-Forwarded-For` names the client (the address failed logins
    /// are counted against and the audit trail records). Empty (default): the peer address.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// Failed-login delays (form and JSON login alike), counted in memory by the process (lost
/// on restart, not shared between several `serve` processes). Three counters per attempt:
/// the username at the client's address, the username from every address, the address. Past
/// a counter's free failures, each failure doubles the wait before the next attempt on it
/// (from `base_delay` up to the cap); an attempt during a wait is answered 429 with
/// `Retry-After` without checking the password. No lockout: the username's counter from
/// every address is capped at `max_delay_per_user`, so nobody can keep an account's owner
/// out for longer. A successful login clears its username's counters.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub free_per_user_address: u32,
    pub free_per_user: u32,
    /// Higher: a school's front desks share one address.
    pub free_per_address: u32,
    pub base_delay: std::time::Duration,
    /// Longest wait of the per-(username, address) and per-address counters.
    pub max_delay: std::time::Duration,
    /// Longest wait of the username's counter from every address.
    pub max_delay_per_user: std::time::Duration,
    /// A counter is forgotten this long after its last failure.
    pub window: std::time::Duration,
    /// Counters remembered at most (the limiter's memory).
    pub max_entries: usize,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            free_per_user_address: 3,
            free_per_user: 10,
            free_per_address: 20,
            base_delay: std::time::Duration::from_secs(1),
            max_delay: std::time::Duration::from_secs(15 * 60),
            max_delay_per_user: std::time::Duration::from_secs(30),
            window: std::time::Duration::from_secs(15 * 60),
            max_entries: 100_000,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 10 * 1024 * 1024,
            metrics_public: true,
            data_dir: PathBuf::from("data"),
            session_hours: 12,
            secure_cookies: false,
            login_limits: LoginLimits::default(),
            trusted_proxies: Vec::new(),
        }
    }
}

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the API needs from the running process beyond the ledger: operational state and the
/// face pipeline (enrollment, erasure), which live in the binary.
pub trait Ops: Send + Sync + 'static {
    /// `/healthz` body.
    fn health(&self) -> Value {
        serde_json::json!({"status": "ok"})
    }
    /// `/metrics` body (Prometheus text).
    fn metrics(&self) -> String {
        String::new()
    }
    /// Health state per camera id (`online`, `offline`, `stale`, …).
    fn camera_states(&self) -> std::collections::BTreeMap<String, String> {
        Default::default()
    }
    /// The biometric retention periods this process enforces (shown in the staff app):
    /// `{"review_crop_days","unknown_crop_days","decided_review_days","inactive_template_months"}`,
    /// or null when no retention job runs here.
    fn retention_policy(&self) -> Value {
        Value::Null
    }
    /// Enrolls one photo of a student (quality gate + duplicate check); the verdict as JSON.
    fn enroll_photo<'a>(
        &'a self,
        _student: &'a str,
        _image: Vec<u8>,
    ) -> BoxFut<'a, Result<Value, ApiError>> {
        Box::pin(async {
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "enrollment_unavailable",
                "face enrollment is not available in this process",
            ))
        })
    }
    /// Erases a student's biometric data; the receipt as JSON.
    fn erase<'a>(&'a self, _student: &'a str) -> BoxFut<'a, Result<Value, ApiError>> {
        Box::pin(async {
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "erasure_unavailable",
                "biometric erasure is not available in this process",
            ))
        })
    }
    /// Subject-access export: everything held about a student, returned whole (the JSON
    /// record and the enrollment photos) for the API to hand to the caller; nothing of it may
    /// stay on disk.
    fn export<'a>(&'a self, _student: &'a str) -> BoxFut<'a, Result<Value, ApiError>> {
        Box::pin(async {
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "export_unavailable",
                "subject-access export is not available in this process",
            ))
        })
    }
    /// Records a guardian's consent withdrawal and erases the biometric data at once; the
    /// erasure receipt as JSON.
    fn withdraw_consent<'a>(
        &'a self,
        _student: &'a str,
        _by: &'a str,
        _document_ref: Option<String>,
    ) -> BoxFut<'a, Result<Value, ApiError>> {
        Box::pin(async {
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "consent_unavailable",
                "consent withdrawal is not available in this process",
            ))
        })
    }
}

/// No pipeline attached (tests, API-only processes).
pub struct NoOps;
impl Ops for NoOps {}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<ApiConfig>,
    pub ops: Arc<dyn Ops>,
    pub(crate) cache: Arc<Caches>,
}

/// Short-lived caches for the hot read path (the attendance board polled by every front desk):
/// authenticated credentials (2 s; a logout removes its entry at once, a token revocation
/// empties the cache and bumps `auth_epoch` so that a lookup that raced with it is not
/// remembered) and rendered boards (500 ms; every change made through the API clears them, so
/// a staff member always sees their own change; check-ins from cameras show within the TTL).
/// Also the failed-login counts ([`LoginLimits`]).
#[derive(Default)]
pub(crate) struct Caches {
    pub auth:
        std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, auth::Staff)>>,
    pub auth_epoch: std::sync::atomic::AtomicU64,
    pub board: std::sync::Mutex<
        std::collections::HashMap<String, (std::time::Instant, axum::body::Bytes)>,
    >,
    pub logins: auth::LoginLimiter,
    pub argon: auth::ArgonGate,
    /// Password hashes checked (argon2 runs) by logins, for the timing guarantee's test.
    pub password_checks: std::sync::atomic::AtomicU64,
}

pub(crate) const AUTH_TTL: std::time::Duration = std::time::Duration::from_secs(2);
pub(crate) const BOARD_TTL: std::time::Duration = std::time::Duration::from_millis(500);

impl Caches {
    pub fn clear_boards(&self) {
        self.board.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
    pub fn forget(&self, key: &str) {
        self.auth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
    /// Drops every cached credential (after a revocation has committed); a lookup that started
    /// before this call is not remembered (epoch check in `auth::remember`).
    pub fn forget_all_credentials(&self) {
        self.auth_epoch
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.auth.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl AppState {
    /// How many password hashes logins have checked so far (each login checks exactly one,
    /// whether the account exists or not).
    pub fn password_checks(&self) -> u64 {
        self.cache
            .password_checks
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn new(store: Store, config: ApiConfig, ops: Arc<dyn Ops>) -> Self {
        AppState {
            store,
            config: Arc::new(config),
            ops,
            cache: Arc::new(Caches::default()),
        }
    }
}

/// A documented route.
#[derive(Debug, Clone)]
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// `None`: public (no authentication).
    pub roles: Option<&'static [Role]>,
    pub tag: &'static str,
}

/// What the document says of a route beyond its [`RouteDoc`]: set in the route table right
/// after the route (`.op("listStudents").takes::<…>().returns::<…>()`); a route given none (the
/// staff app's pages) gets [`Operation::derived`].
#[derive(Debug, Clone)]
pub struct Operation {
    /// The OpenAPI `operationId`: an identifier (`listStudents`); unique in the table.
    pub operation_id: String,
    /// What the route takes (`None`: no body).
    pub request: Option<Body>,
    /// What a success answers (`None`: not said), with its status (200, or 201 for a creation).
    pub response: Option<Body>,
    pub status: u16,
}

impl Operation {
    /// `GET /app/students/{id}` → `getAppStudentsId`, no bodies, 200.
    pub fn derived(r: &RouteDoc) -> Operation {
        Operation {
            operation_id: derived_operation_id(r.method, r.path),
            request: None,
            response: None,
            status: 200,
        }
    }
}

/// A request or response body in the document.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// JSON of a schema of `components.schemas`.
    Json(SchemaDoc),
    /// Bytes of one of these content types (uploads, CSV, JPEG, HTML, text).
    Raw(&'static [&'static str]),
}

impl Body {
    /// JSON of `T`'s schema.
    pub fn json<T: utoipa::ToSchema>() -> Body {
        Body::Json(SchemaDoc {
            name: T::name,
            collect: collect_schemas::<T>,
        })
    }
}

/// Schemas by name.
pub type NamedSchemas = Vec<(
    String,
    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
)>;

/// A named schema and the schemas it refers to (recursively).
#[derive(Clone, Copy)]
pub struct SchemaDoc {
    name: fn() -> std::borrow::Cow<'static, str>,
    collect: fn(&mut NamedSchemas),
}

impl SchemaDoc {
    /// Its name in `components.schemas`.
    pub fn name(&self) -> String {
        (self.name)().into_owned()
    }
    /// Its schema and every schema it refers to, by name.
    pub fn schemas(&self) -> NamedSchemas {
        let mut v = Vec::new();
        (self.collect)(&mut v);
        v
    }
}

impl std::fmt::Debug for SchemaDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SchemaDoc({})", self.name())
    }
}

fn collect_schemas<T: utoipa::ToSchema>(v: &mut NamedSchemas) {
    v.push((T::name().into_owned(), T::schema()));
    T::schemas(v);
}

fn derived_operation_id(method: &str, path: &str) -> String {
    let mut out = method.to_ascii_lowercase();
    for word in path.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut cs = word.chars();
        if let Some(c) = cs.next() {
            out.push(c.to_ascii_uppercase());
            out.extend(cs);
        }
    }
    out
}

/// The route table: each route is mounted and documented at once.
pub struct Routes {
    router: Router<AppState>,
    pub docs: Vec<RouteDoc>,
    /// By method and path: what [`Routes::op`] and the like said of a route.
    pub ops: std::collections::BTreeMap<(&'static str, &'static str), Operation>,
    state: AppState,
}

impl Routes {
    fn new(state: AppState) -> Self {
        Routes {
            router: Router::new(),
            docs: Vec::new(),
            ops: Default::default(),
            state,
        }
    }

    /// Mounts `handler` at `method path`; `roles: None` is public, else the guard runs first.
    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        tag: &'static str,
        roles: Option<&'static [Role]>,
        summary: &'static str,
        handler: MethodRouter<AppState>,
    ) -> Self {
        let handler = match roles {
            Some(r) => handler.route_layer(axum::middleware::from_fn_with_state(
                (self.state.clone(), r),
                auth::guard,
            )),
            None => handler,
        };
        self.router = self.router.route(&axum_path(path), handler);
        self.docs.push(RouteDoc {
            method,
            path,
            summary,
            roles,
            tag,
        });
        self
    }

    /// The last added route's operation.
    fn last(&mut self) -> &mut Operation {
        let d = self
            .docs
            .last()
            .expect("a route is added before it is described");
        self.ops
            .entry((d.method, d.path))
            .or_insert_with(|| Operation::derived(d))
    }

    /// The last added route's operation id (an identifier: `listStudents`).
    fn op(mut self, id: &'static str) -> Self {
        self.last().operation_id = id.to_string();
        self
    }

    /// The last added route takes a JSON body of `T`'s schema.
    fn takes<T: utoipa::ToSchema>(mut self) -> Self {
        self.last().request = Some(Body::json::<T>());
        self
    }

    /// The last added route takes a body of one of these content types.
    fn takes_raw(mut self, types: &'static [&'static str]) -> Self {
        self.last().request = Some(Body::Raw(types));
        self
    }

    /// The last added route answers 200 with JSON of `T`'s schema.
    fn returns<T: utoipa::ToSchema>(mut self) -> Self {
        self.last().response = Some(Body::json::<T>());
        self
    }

    /// The last added route answers 201 with JSON of `T`'s schema.
    fn creates<T: utoipa::ToSchema>(mut self) -> Self {
        let d = self.last();
        d.response = Some(Body::json::<T>());
        d.status = 201;
        self
    }

    /// The last added route answers 200 with a body of one of these content types.
    fn returns_raw(mut self, types: &'static [&'static str]) -> Self {
        self.last().response = Some(Body::Raw(types));
        self
    }
}

/// OpenAPI `{id}` → axum 0.8 `{id}` (the same syntax; kept as a seam).
fn axum_path(p: &str) -> String {
    p.to_string()
}

/// Every route of the API and the web app, documented.
pub fn routes(state: AppState) -> Routes {
    let r = Routes::new(state);
    let r = v1::mount(r);
    web::mount(r)
}

/// The whole HTTP surface: `/healthz`, `/metrics`, `/api/…`, `/app/…`.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let Routes {
        router,
        docs,
        ops,
        state,
    } = routes(state);
    let doc = Arc::new(openapi::document(&operations(docs, ops)));
    let docs_json = doc.clone();
    router
        .route(
            "/api/openapi.json",
            axum::routing::get(move || {
                let d = docs_json.clone();
                async move { axum::Json((*d).clone()) }
            })
            .route_layer(axum::middleware::from_fn_with_state(
                (state.clone(), auth::roles::ANY),
                auth::guard,
            )),
        )
        .route(
            "/api/docs",
            axum::routing::get(move || {
                let d = doc.clone();
                async move { axum::response::Html(openapi::docs_page(&d)) }
            })
            .route_layer(axum::middleware::from_fn_with_state(
                (state.clone(), auth::roles::ANY),
                auth::guard,
            )),
        )
        .fallback(|uri: axum::http::Uri| async move {
            // a mistyped staff-app address gets a page, an API client its JSON error
            if uri.path() == "/app" || uri.path().starts_with("/app/") {
                web::unknown_app_page()
            } else {
                ApiError::not_found("no such route").into_response()
            }
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

fn meta_docs() -> Vec<(RouteDoc, Operation)> {
    vec![
        (
            RouteDoc {
                method: "GET",
                path: "/api/openapi.json",
                summary: "this document",
                roles: Some(auth::roles::ANY),
                tag: "meta",
            },
            Operation {
                operation_id: "getOpenApiDocument".into(),
                request: None,
                response: Some(Body::json::<openapi::OpenApiDocument>()),
                status: 200,
            },
        ),
        (
            RouteDoc {
                method: "GET",
                path: "/api/docs",
                summary: "browsable documentation",
                roles: Some(auth::roles::ANY),
                tag: "meta",
            },
            Operation {
                operation_id: "getDocsPage".into(),
                request: None,
                response: Some(Body::Raw(&["text/html"])),
                status: 200,
            },
        ),
    ]
}

/// Each route with its operation, the document's routes last.
fn operations(
    docs: Vec<RouteDoc>,
    mut ops: std::collections::BTreeMap<(&'static str, &'static str), Operation>,
) -> Vec<(RouteDoc, Operation)> {
    let mut v: Vec<_> = docs
        .into_iter()
        .map(|d| {
            let op = ops
                .remove(&(d.method, d.path))
                .unwrap_or_else(|| Operation::derived(&d));
            (d, op)
        })
        .collect();
    v.extend(meta_docs());
    v
}

/// Every documented route (method, path, roles): the table the router is built from.
pub fn documented_routes(state: AppState) -> Vec<RouteDoc> {
    documented_operations(state)
        .into_iter()
        .map(|(d, _)| d)
        .collect()
}

/// Every documented route with its operation (id, request and response bodies).
pub fn documented_operations(state: AppState) -> Vec<(RouteDoc, Operation)> {
    let r = routes(state);
    operations(r.docs, r.ops)
}

/// The OpenAPI document of a state's routes.
pub fn openapi_document(state: AppState) -> Value {
    openapi::document(&documented_operations(state))
}

// -------------------------------------------------------------------------------------------
// Bodies
// -------------------------------------------------------------------------------------------

/// A JSON body with clear errors: 415 on another content type, 413 over the limit, 400 on
/// malformed JSON, 422 on a well-formed body of the wrong shape.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        require_type(req.headers(), &["application/json"])?;
        let bytes = read_bytes(req, state).await?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let v: Result<T, _> = serde_path_to_error_lite(&mut de);
        match v {
            Ok(v) => Ok(JsonBody(v)),
            Err(e) if e.is_syntax() || e.is_eof() => Err(ApiError::bad_request(
                "malformed_json",
                format!("malformed JSON: {e}"),
            )),
            Err(e) => Err(ApiError::invalid(format!("body: {e}"))),
        }
    }
}

fn serde_path_to_error_lite<'de, T: DeserializeOwned>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
) -> Result<T, serde_json::Error> {
    let v = T::deserialize(&mut *de)?;
    de.end()?;
    Ok(v)
}

pub(crate) fn require_type(h: &HeaderMap, allowed: &[&str]) -> Result<(), ApiError> {
    let ct = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let base = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if allowed.iter().any(|a| *a == base) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "content type {:?} is not accepted here; send {}",
                ct,
                allowed.join(" or ")
            ),
        ))
    }
}

pub(crate) async fn read_bytes<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<axum::body::Bytes, ApiError> {
    axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is over the configured limit",
                )
            } else {
                ApiError::bad_request("bad_body", e.body_text())
            }
        })
}

/// A raw body (uploads, CSV) with the JSON 413 error over the limit.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(RawBody(read_bytes(req, state).await?))
    }
}

/// `/healthz` (public).
async fn healthz(State(st): State<AppState>) -> Response {
    axum::Json(st.ops.health()).into_response()
}

/// `/metrics` (public unless restricted by config).
async fn metrics(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    if !st.config.metrics_public {
        let staff = auth::authenticate(&st, req.headers(), None)
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        staff.require(auth::roles::MANAGE)?;
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.ops.metrics(),
    )
        .into_response())
}

pub(crate) fn ops_routes(r: Routes) -> Routes {
    use axum::routing::get;
    r.add(
        "GET",
        "/healthz",
        "ops",
        None,
        "liveness and camera states",
        get(healthz),
    )
    .op("getHealth")
    .returns::<Health>()
    .add(
        "GET",
        "/metrics",
        "ops",
        None,
        "Prometheus metrics (public unless metrics_public = false: then admin/manager)",
        get(metrics),
    )
    .op("getMetrics")
    .returns_raw(&["text/plain"])
}

/// `/healthz`: `{"status": "ok", …}` and what the process adds (camera states, …).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
}
