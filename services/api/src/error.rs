//! JSON errors: `{"error":{"code":"...","message":"..."}}` with a stable code per case.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rollcall_ledger::LedgerError;

/// An API error: HTTP status, stable machine code, human message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429 answers).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// 429: too many attempts; come back in `retry_after` seconds.
    pub fn too_many(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, message)
        }
    }
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "log in or send a bearer API token",
        )
    }
    pub fn forbidden_role(role: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden_role",
            format!("the {role} role may not do this"),
        )
    }
    pub fn forbidden_campus(campus: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden_campus",
            format!("your account is not scoped to campus {campus}"),
        )
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

/// The body of every error answer: `{"error": {"code", "message"}}` (schema `Error`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A stable machine code (`not_found`, `invalid`, …) and a human message.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, s.into());
        }
        r
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match &e {
            LedgerError::NotFound { .. } => ApiError::not_found(e.to_string()),
            LedgerError::Invalid { .. } => ApiError::invalid(e.to_string()),
            LedgerError::NotRefundable(..) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_refundable",
                e.to_string(),
            ),
            LedgerError::Import(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "import_rejected",
                e.to_string(),
            ),
            LedgerError::Csv(_) => ApiError::bad_request("malformed_csv", e.to_string()),
            LedgerError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            _ if e.is_unique_violation() => ApiError::new(
                StatusCode::CONFLICT,
                "already_exists",
                "a record with this id already exists",
            ),
            _ if e.is_foreign_key_violation() => {
                ApiError::invalid("a referenced record does not exist")
            }
            _ => {
                tracing::error!(error = %e, "ledger error");
                ApiError::internal("internal error (logged)")
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
