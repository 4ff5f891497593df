//! Simple JWT's tokens: HS256, claims `token_type`, `exp`, `iat`, `jti`, `user_id`, and
//! `sid`, the session (SPEC.md §11), which Simple JWT clients ignore as any unknown claim.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `access` or `refresh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }

    /// Simple JWT's class name, used in its `messages` list.
    pub fn class_name(self) -> &'static str {
        match self {
            Self::Access => "AccessToken",
            Self::Refresh => "RefreshToken",
        }
    }
}

/// The claims of a token as Simple JWT 5.5 writes them (`user_id` as a string).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub token_type: TokenType,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// A token that passed signature, expiry and type checks.
#[derive(Debug, Clone)]
pub struct Verified {
    pub token_type: TokenType,
    pub jti: String,
    /// `None` when the claim is missing or not an id.
    pub user_id: Option<i64>,
    pub expires_at: DateTime<Utc>,
    /// Seconds since the epoch; `None` when missing (never in tokens rally issued).
    pub iat: Option<i64>,
    /// The session; `None` in tokens issued before sessions existed.
    pub sid: Option<String>,
}

/// Why a token was refused, in Simple JWT's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Invalid,
    Expired,
    WrongType,
    NoType,
    NoId,
    /// Its session ended, or the password changed after it was issued (SPEC.md §11).
    Revoked,
}

impl TokenError {
    pub fn message(self) -> &'static str {
        match self {
            Self::Invalid => "Token is invalid",
            Self::Expired => "Token is expired",
            Self::WrongType => "Token has wrong type",
            Self::NoType => "Token has no type",
            Self::NoId => "Token has no id",
            Self::Revoked => "Token has been revoked",
        }
    }
}

/// Signs and checks tokens with one HMAC key.
#[derive(Clone)]
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

/// A freshly issued access/refresh pair.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
}

impl TokenService {
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            access_ttl,
            refresh_ttl,
        }
    }

    /// A fresh token id.
    pub fn new_jti() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// Signs one token for `user_id`, outside any session.
    pub fn issue(&self, token_type: TokenType, user_id: i64) -> anyhow::Result<String> {
        self.issue_with(token_type, user_id, None, Self::new_jti(), None)
    }

    /// Signs one token. `iat` is at least `min_iat`: a token issued in the second of a
    /// password change must not count as issued before it (SPEC.md §11).
    fn issue_with(
        &self,
        token_type: TokenType,
        user_id: i64,
        sid: Option<&str>,
        jti: String,
        min_iat: Option<i64>,
    ) -> anyhow::Result<String> {
        let now = Utc::now().timestamp();
        let iat = min_iat.map_or(now, |m| m.max(now));
        let ttl = match token_type {
            TokenType::Access => self.access_ttl,
            TokenType::Refresh => self.refresh_ttl,
        };
        let claims = Claims {
            token_type,
            exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            iat,
            jti,
            user_id: user_id.to_string(),
            sid: sid.map(str::to_string),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    pub fn issue_pair(&self, user_id: i64) -> anyhow::Result<TokenPair> {
        Ok(TokenPair {
            access: self.issue(TokenType::Access, user_id)?,
            refresh: self.issue(TokenType::Refresh, user_id)?,
        })
    }

    /// A pair for session `sid`; the refresh token's id is `refresh_jti`, already recorded
    /// as the session's current one.
    pub fn issue_session_pair(
        &self,
        user_id: i64,
        sid: &str,
        refresh_jti: String,
        min_iat: Option<i64>,
    ) -> anyhow::Result<TokenPair> {
        Ok(TokenPair {
            access: self.issue_with(
                TokenType::Access,
                user_id,
                Some(sid),
                Self::new_jti(),
                min_iat,
            )?,
            refresh: self.issue_with(
                TokenType::Refresh,
                user_id,
                Some(sid),
                refresh_jti,
                min_iat,
            )?,
        })
    }

    /// Checks signature (HS256 only: `alg: none` and other algorithms are refused), expiry,
    /// and, when `expected` is given, the token type.
    pub fn verify(&self, token: &str, expected: Option<TokenType>) -> Result<Verified, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.required_spec_claims = ["exp"].into_iter().map(String::from).collect();
        let data = jsonwebtoken::decode::<Value>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            },
        )?;
        let claims = data.claims;
        let token_type = match claims.get("token_type").and_then(Value::as_str) {
            None => return Err(TokenError::NoType),
            Some("access") => TokenType::Access,
            Some("refresh") => TokenType::Refresh,
            Some(_) => return Err(TokenError::WrongType),
        };
        if expected.is_some_and(|t| t != token_type) {
            return Err(TokenError::WrongType);
        }
        let jti = match claims.get("jti").and_then(Value::as_str) {
            Some(j) if !j.is_empty() => j.to_string(),
            _ => return Err(TokenError::NoId),
        };
        let user_id = match claims.get("user_id") {
            Some(Value::String(s)) => s.parse::<i64>().ok(),
            Some(Value::Number(n)) => n.as_i64(),
            _ => None,
        };
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(TokenError::Invalid)?;
        let expires_at = DateTime::from_timestamp(exp, 0).ok_or(TokenError::Invalid)?;
        let iat = claims.get("iat").and_then(Value::as_i64);
        let sid = claims
            .get("sid")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(Verified {
            token_type,
            jti,
            user_id,
            expires_at,
            iat,
            sid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn service() -> TokenService {
        TokenService::new(
            b"0123456789abcdef0123456789abcdef",
            Duration::from_secs(300),
            Duration::from_secs(86_400),
        )
    }

    #[test]
    fn round_trip_and_type_check() {
        let s = service();
        let pair = s.issue_pair(7).unwrap();
        let access = s.verify(&pair.access, Some(TokenType::Access)).unwrap();
        assert_eq!(access.user_id, Some(7));
        assert_eq!(
            s.verify(&pair.access, Some(TokenType::Refresh))
                .unwrap_err(),
            TokenError::WrongType
        );
        assert!(s.verify(&pair.refresh, None).is_ok());
    }

    #[test]
    fn foreign_keys_and_alg_none_are_refused() {
        let other = TokenService::new(
            b"another-secret-another-secret-xx",
            Duration::from_secs(300),
            Duration::from_secs(300),
        );
        let token = other.issue(TokenType::Access, 1).unwrap();
        assert_eq!(
            service().verify(&token, None).unwrap_err(),
            TokenError::Invalid
        );

        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64
            .encode(br#"{"token_type":"access","exp":9999999999,"iat":1,"jti":"x","user_id":"1"}"#);
        let forged = format!("{header}.{payload}.");
        assert_eq!(
            service().verify(&forged, None).unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn expired_tokens_say_so() {
        let s = service();
        let claims = Claims {
            token_type: TokenType::Access,
            exp: Utc::now().timestamp() - 10,
            iat: Utc::now().timestamp() - 400,
            jti: "abc".into(),
            user_id: "1".into(),
            sid: None,
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &s.encoding).unwrap();
        assert_eq!(s.verify(&token, None).unwrap_err(), TokenError::Expired);
    }
}
