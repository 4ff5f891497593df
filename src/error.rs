//! `ApiError`: every failure a request can meet, rendered in Django REST Framework's shape.
//! This is the only place that knows status codes and error bodies.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Map, Value, json};

/// Field name → messages, as DRF's `ValidationError` renders them.
pub type FieldErrors = Map<String, Value>;

/// The realm Simple JWT names in `WWW-Authenticate`.
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"api\"";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 with one list of messages per field.
    #[error("validation failed")]
    Validation(FieldErrors),
    /// 400 with a `detail` (malformed JSON, bad query parameter).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401: no credentials on a route that needs them.
    #[error("not authenticated")]
    NotAuthenticated,
    /// 401 with a detail and an optional Simple JWT `code` and `messages`.
    #[error("authentication failed: {detail}")]
    AuthFailed {
        detail: String,
        code: Option<&'static str>,
        messages: Option<Value>,
    },
    /// 403.
    #[error("permission denied")]
    PermissionDenied,
    /// 404, for unknown ids, malformed ids and unknown routes alike.
    #[error("not found")]
    NotFound,
    /// 409 with a detail: the request conflicts with the resource's state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// 412: an `If-Match` no longer matches: the resource changed since the client read it.
    #[error("precondition failed")]
    PreconditionFailed,
    /// 422 with a detail: well-formed, but not acceptable (an idempotency key reused with a
    /// different request).
    #[error("unprocessable: {0}")]
    Unprocessable(String),
    /// 405 naming the method.
    #[error("method {0} not allowed")]
    MethodNotAllowed(String),
    /// 408: the body did not arrive in time.
    #[error("request timed out")]
    RequestTimeout,
    /// 413.
    #[error("payload too large")]
    PayloadTooLarge { limit: usize },
    /// 415 naming the media type received.
    #[error("unsupported media type {0}")]
    UnsupportedMediaType(String),
    /// 429 with the seconds to wait.
    #[error("throttled")]
    Throttled { retry_after_secs: u64 },
    /// 503: the database is unreachable or the pool is exhausted.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// 500: the cause goes to the log, never to the client.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }

    /// A 400 on a single field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::new();
        errors.insert(field.to_string(), json!([message.into()]));
        Self::Validation(errors)
    }

    /// A 401 with a Simple JWT `code`.
    pub fn token(detail: impl Into<String>, code: &'static str) -> Self {
        Self::AuthFailed {
            detail: detail.into(),
            code: Some(code),
            messages: None,
        }
    }

    /// A 401 without a code, as DRF's `AuthenticationFailed` renders it.
    pub fn auth_failed(detail: impl Into<String>) -> Self {
        Self::AuthFailed {
            detail: detail.into(),
            code: None,
            messages: None,
        }
    }

    /// Waiting for a pooled connection timed out: the database is down or saturated.
    pub fn from_pool(e: diesel::r2d2::PoolError) -> Self {
        Self::Unavailable(format!("no database connection: {e}"))
    }

    fn detail(&self) -> String {
        match self {
            Self::Validation(_) => String::new(),
            Self::BadRequest(d) => d.clone(),
            Self::NotAuthenticated => "Authentication credentials were not provided.".into(),
            Self::AuthFailed { detail, .. } => detail.clone(),
            Self::PermissionDenied => "You do not have permission to perform this action.".into(),
            Self::NotFound => "Not found.".into(),
            Self::Conflict(d) => d.clone(),
            Self::PreconditionFailed => {
                "The event has changed since you read it; GET it again and reapply your change."
                    .into()
            }
            Self::Unprocessable(d) => d.clone(),
            Self::RequestTimeout => "Request timed out.".into(),
            Self::MethodNotAllowed(m) => format!("Method \"{m}\" not allowed."),
            Self::PayloadTooLarge { limit } => {
                format!("Request body is too large: the limit is {limit} bytes.")
            }
            Self::UnsupportedMediaType(t) => format!("Unsupported media type \"{t}\" in request."),
            Self::Throttled { retry_after_secs } => format!(
                "Request was throttled. Expected available in {retry_after_secs} second{}.",
                if *retry_after_secs == 1 { "" } else { "s" }
            ),
            Self::Unavailable(_) => "Service temporarily unavailable, try again later.".into(),
            Self::Internal(_) => "A server error occurred.".into(),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => Self::NotFound,
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                Self::Unavailable(info.message().to_string())
            }
            Error::DatabaseError(DatabaseErrorKind::UnableToSendCommand, info) => {
                Self::Unavailable(info.message().to_string())
            }
            Error::DatabaseError(_, ref info)
                if info.message().contains("database is locked")
                    || info.message().contains("server closed the connection")
                    || info.message().contains("terminating connection")
                    || info.message().contains("statement timeout")
                    || info.message().contains("the database system is") =>
            {
                Self::Unavailable(info.message().to_string())
            }
            other => Self::Internal(other.into()),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::internal(anyhow::anyhow!("blocking task failed: {e}"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotAuthenticated | Self::AuthFailed { .. } => StatusCode::UNAUTHORIZED,
            Self::PermissionDenied => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            Self::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "request failed")
            }
            Self::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        let body = match self {
            Self::Validation(errors) => Value::Object(errors.clone()),
            Self::AuthFailed {
                detail,
                code,
                messages,
            } => {
                let mut body = json!({ "detail": detail });
                if let Some(code) = code {
                    body["code"] = json!(code);
                }
                if let Some(messages) = messages {
                    body["messages"] = messages.clone();
                }
                body
            }
            other => json!({ "detail": other.detail() }),
        };
        let mut response = HttpResponse::build(status);
        match self {
            Self::NotAuthenticated | Self::AuthFailed { .. } => {
                response.insert_header((header::WWW_AUTHENTICATE, WWW_AUTHENTICATE));
            }
            Self::Throttled { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            _ => {}
        }
        response.json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn render(e: ApiError) -> (u16, Value, actix_web::http::header::HeaderMap) {
        let response = e.error_response();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().try_into_bytes().expect("a full body");
        (
            status,
            serde_json::from_slice(&bytes).expect("json"),
            headers,
        )
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let (status, body, _) = render(ApiError::internal(anyhow::anyhow!(
            "SELECT * FROM users: syntax error at /src/secret.rs:12"
        )));
        assert_eq!(status, 500);
        assert_eq!(body, json!({"detail": "A server error occurred."}));
    }

    #[test]
    fn every_status_has_drf_shape() {
        let cases = [
            (
                ApiError::NotAuthenticated,
                401,
                json!({"detail": "Authentication credentials were not provided."}),
            ),
            (
                ApiError::PermissionDenied,
                403,
                json!({"detail": "You do not have permission to perform this action."}),
            ),
            (ApiError::NotFound, 404, json!({"detail": "Not found."})),
            (
                ApiError::PreconditionFailed,
                412,
                json!({"detail": "The event has changed since you read it; GET it again and reapply your change."}),
            ),
            (
                ApiError::MethodNotAllowed("PUT".into()),
                405,
                json!({"detail": "Method \"PUT\" not allowed."}),
            ),
            (
                ApiError::UnsupportedMediaType("text/plain".into()),
                415,
                json!({"detail": "Unsupported media type \"text/plain\" in request."}),
            ),
            (
                ApiError::Throttled {
                    retry_after_secs: 7,
                },
                429,
                json!({"detail": "Request was throttled. Expected available in 7 seconds."}),
            ),
            (
                ApiError::Unavailable("pool timed out".into()),
                503,
                json!({"detail": "Service temporarily unavailable, try again later."}),
            ),
            (
                ApiError::token("Token is invalid", "token_not_valid"),
                401,
                json!({"detail": "Token is invalid", "code": "token_not_valid"}),
            ),
        ];
        for (error, status, body) in cases {
            let (s, b, headers) = render(error);
            assert_eq!((s, &b), (status, &body));
            if status == 401 {
                assert_eq!(headers.get("www-authenticate").unwrap(), WWW_AUTHENTICATE);
            }
            if status == 429 {
                assert_eq!(headers.get("retry-after").unwrap(), "7");
            }
        }
    }

    #[test]
    fn lost_database_connections_are_503() {
        use diesel::result::{DatabaseErrorKind, Error};
        let e: ApiError = Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection,
            Box::new("server closed the connection unexpectedly".to_string()),
        )
        .into();
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
