//! Liveness and readiness probes.

use std::time::Duration;

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use diesel::r2d2::R2D2Connection;
use serde_json::json;

use crate::error::ApiError;
use crate::http::resource;
use crate::startup::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz", &[Method::GET]).route(web::get().to(healthz)))
        .service(resource("/readyz", &[Method::GET]).route(web::get().to(readyz)));
}

/// The process is up and serving.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "The process is up.",
    responses(
        (status = 200, description = "Up", body = crate::openapi::Health),
    )
)]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The database answers; 503 when it does not, within two seconds.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "The database answers.",
    responses(
        (status = 200, description = "Ready", body = crate::openapi::Health),
        (status = 503, description = "Database unreachable", body = crate::openapi::Health),
    )
)]
pub(crate) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let pool = state.pool.clone();
    let ready = web::block(move || {
        let mut conn = pool
            .get_timeout(Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        conn.ping().map_err(|e| e.to_string())
    })
    .await?;
    match ready {
        Ok(()) => Ok(HttpResponse::Ok().json(json!({"status": "ok", "database": "ok"}))),
        Err(cause) => {
            tracing::warn!(%cause, "readiness check failed");
            Ok(HttpResponse::ServiceUnavailable()
                .json(json!({"status": "unavailable", "database": "unreachable"})))
        }
    }
}
