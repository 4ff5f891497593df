//! Identity extractors: `AuthUser` (must be signed in) and `MaybeUser` (public route).
//! Both answer 401 to a present but bad token, as Simple JWT does even on public routes.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use serde_json::json;

use super::sessions;
use super::tokens::{TokenError, TokenService, TokenType, Verified};
use super::types::User;
use crate::db;
use crate::error::ApiError;
use crate::startup::AppState;

/// The signed-in caller; a request without credentials is 401.
pub struct AuthUser(pub User);

/// The caller if signed in.
pub struct MaybeUser(pub Option<User>);

impl FromRequest for MaybeUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req.headers().get(header::AUTHORIZATION).cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("no app state")))?;
            let Some(header) = header else {
                return Ok(Self(None));
            };
            authenticate(&state, header.as_bytes()).await.map(Self)
        })
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let maybe = MaybeUser::from_request(req, payload);
        Box::pin(async move {
            match maybe.await? {
                MaybeUser(Some(user)) => Ok(Self(user)),
                MaybeUser(None) => Err(ApiError::NotAuthenticated),
            }
        })
    }
}

/// What an `Authorization` header holds, as Simple JWT's `get_raw_token` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationHeader<'a> {
    /// Another scheme (or none): the header is ignored.
    Other,
    /// `Bearer` with no value or more than one.
    Malformed,
    /// `Bearer` and one value, not yet checked.
    Bearer(&'a [u8]),
}

/// Splits an `Authorization` header on ASCII whitespace; pure, so it can be fuzzed.
pub fn parse_authorization(header: &[u8]) -> AuthorizationHeader<'_> {
    let parts: Vec<&[u8]> = header
        .split(u8::is_ascii_whitespace)
        .filter(|p| !p.is_empty())
        .collect();
    match parts.as_slice() {
        [b"Bearer", token] => AuthorizationHeader::Bearer(token),
        [b"Bearer", ..] => AuthorizationHeader::Malformed,
        _ => AuthorizationHeader::Other,
    }
}

/// Simple JWT's `JWTAuthentication.authenticate`: a header of another scheme is ignored,
/// a `Bearer` header must hold one valid access token of an active, existing user.
async fn authenticate(state: &AppState, header: &[u8]) -> Result<Option<User>, ApiError> {
    let token = match parse_authorization(header) {
        AuthorizationHeader::Other => return Ok(None),
        AuthorizationHeader::Malformed => {
            return Err(ApiError::token(
                "Authorization header must contain two space-delimited values",
                "bad_authorization_header",
            ));
        }
        AuthorizationHeader::Bearer(token) => token,
    };
    let token = std::str::from_utf8(token).map_err(|_| invalid_access(TokenError::Invalid))?;
    let verified = state
        .tokens
        .verify(token, Some(TokenType::Access))
        .map_err(invalid_access)?;
    let user_id = verified.user_id.ok_or_else(|| {
        ApiError::token(
            "Token contained no recognizable user identification",
            "token_not_valid",
        )
    })?;
    let sid = verified.sid.clone();
    let found = db::run(&state.pool, move |conn| {
        Ok(sessions::user_with_session(conn, user_id, sid.as_deref())?)
    })
    .await?;
    match found {
        None => Err(ApiError::token("User not found", "user_not_found")),
        Some((u, _)) if !u.is_active => Err(ApiError::token("User is inactive", "user_inactive")),
        // An ended session, or a password changed since the token was issued.
        Some((u, live)) if !live || sessions::predates_password_change(&u, verified.iat) => {
            Err(invalid_access(TokenError::Revoked))
        }
        Some((u, _)) => Ok(Some(u)),
    }
}

/// The claims of the request's bearer access token, when it has a valid one; for handlers
/// that need more than the user (the session it belongs to).
pub fn access_claims(req: &HttpRequest, tokens: &TokenService) -> Option<Verified> {
    let header = req.headers().get(header::AUTHORIZATION)?;
    let AuthorizationHeader::Bearer(token) = parse_authorization(header.as_bytes()) else {
        return None;
    };
    let token = std::str::from_utf8(token).ok()?;
    tokens.verify(token, Some(TokenType::Access)).ok()
}

fn invalid_access(e: TokenError) -> ApiError {
    ApiError::AuthFailed {
        detail: "Given token not valid for any token type".into(),
        code: Some("token_not_valid"),
        messages: Some(json!([{
            "token_class": TokenType::Access.class_name(),
            "token_type": TokenType::Access.as_str(),
            "message": e.message(),
        }])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_headers_split_like_simple_jwt() {
        use AuthorizationHeader::*;
        assert_eq!(parse_authorization(b""), Other);
        assert_eq!(parse_authorization(b"   "), Other);
        assert_eq!(parse_authorization(b"Basic abc"), Other);
        assert_eq!(parse_authorization(b"bearer abc"), Other);
        assert_eq!(parse_authorization(b"Bearer"), Malformed);
        assert_eq!(parse_authorization(b"Bearer a b"), Malformed);
        assert_eq!(
            parse_authorization(b" Bearer\t a.b.c \r\n"),
            Bearer(b"a.b.c")
        );
    }
}
