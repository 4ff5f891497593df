//! Token decoding: the `Authorization` header split and `TokenService::verify`.
//!
//! An input is read one of two ways:
//! - starting with `{`: `HEADER_JSON\nCLAIMS_JSON` (or just `CLAIMS_JSON`, under the default
//!   header), which the harness encodes and signs with the test secret, so the fuzzer reaches
//!   the claim checks behind a valid signature;
//! - anything else: a raw `Authorization` header value, and also a raw token (as the refresh,
//!   verify and blacklist bodies carry one).
//!
//! Checked beyond "no panic": the header split agrees with an independent reading; an
//! accepted token has three parts, an HS256 header, an unexpired `exp`, a non-empty `jti`,
//! claims that read back (type, jti, user id, exp) from its own payload, is refused under
//! another secret, and answers the same with and without an expected type; a signed token
//! of plain claims gets exactly the verdict a model of Simple JWT's rules predicts.

#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use rally::accounts::extract::{AuthorizationHeader, parse_authorization};
use rally::accounts::tokens::{TokenError, TokenService, TokenType, Verified};
use serde_json::{Map, Value};

/// The seeds in corpus/tokens/ are signed with this.
const SECRET: &[u8] = b"rally-fuzz-test-secret-0123456789";
const DEFAULT_HEADER: &[u8] = br#"{"alg":"HS256","typ":"JWT"}"#;

fn service(secret: &[u8]) -> TokenService {
    TokenService::new(
        secret,
        Duration::from_secs(300),
        Duration::from_secs(86_400),
    )
}

static SERVICE: LazyLock<TokenService> = LazyLock::new(|| service(SECRET));
static OTHER: LazyLock<TokenService> =
    LazyLock::new(|| service(b"another-secret-another-secret-xx"));
static KEY: LazyLock<EncodingKey> = LazyLock::new(|| EncodingKey::from_secret(SECRET));

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn sign(header: &[u8], claims: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &KEY, Algorithm::HS256)
        .expect("HMAC signing cannot fail");
    format!("{message}.{signature}")
}

fn same(a: &Verified, b: &Verified) -> bool {
    a.token_type == b.token_type
        && a.jti == b.jti
        && a.user_id == b.user_id
        && a.expires_at == b.expires_at
}

/// Verifies `token` three ways and checks what holds for any token; returns the untyped verdict.
fn check(token: &str) -> Result<Verified, TokenError> {
    let before = now();
    let any = SERVICE.verify(token, None);
    let access = SERVICE.verify(token, Some(TokenType::Access));
    let refresh = SERVICE.verify(token, Some(TokenType::Refresh));
    match &any {
        Ok(v) => {
            let (matching, other) = match v.token_type {
                TokenType::Access => (&access, &refresh),
                TokenType::Refresh => (&refresh, &access),
            };
            assert!(
                matching.as_ref().is_ok_and(|m| same(m, v)),
                "typed verify disagrees: {matching:?} vs {v:?}"
            );
            assert_eq!(other.as_ref().err(), Some(&TokenError::WrongType));
            assert!(!v.jti.is_empty());
            assert!(
                v.expires_at.timestamp() >= before,
                "accepted an expired token"
            );
            assert_eq!(
                OTHER.verify(token, None).err(),
                Some(TokenError::Invalid),
                "accepted under another secret"
            );
            read_back(token, v);
        }
        // Signature, format and expiry are checked before the type. (`Invalid` may also
        // come after it, from an `exp` that is no i64 timestamp: then the type can win.)
        Err(TokenError::Expired) => {
            assert_eq!(access.as_ref().err(), Some(&TokenError::Expired));
            assert_eq!(refresh.as_ref().err(), Some(&TokenError::Expired));
        }
        Err(_) => {
            assert!(
                access.is_err() && refresh.is_err(),
                "typed verify accepted what untyped refused"
            );
        }
    }
    any
}

/// The accepted token's own payload, decoded independently, says what `verify` returned.
fn read_back(token: &str, v: &Verified) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted a token of {} parts", parts.len());
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "HS256");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["token_type"].as_str(), Some(v.token_type.as_str()));
    assert_eq!(claims["jti"].as_str(), Some(v.jti.as_str()));
    assert_eq!(claims["exp"].as_i64(), Some(v.expires_at.timestamp()));
    let user_id = match claims.get("user_id") {
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    assert_eq!(
        v.user_id, user_id,
        "user_id did not read back from {claims}"
    );
}

/// A verdict reduced to what can be compared: type, jti, user id, exp.
type Verdict = Result<(TokenType, String, Option<i64>, i64), TokenError>;

/// What Simple JWT's rules say about signed claims with only its own five keys, an
/// integer `exp` not within seconds of now; `None` when the model does not apply.
fn model(claims: &Map<String, Value>) -> Option<Verdict> {
    const KNOWN: [&str; 5] = ["token_type", "exp", "iat", "jti", "user_id"];
    if claims.keys().any(|k| !KNOWN.contains(&k.as_str())) {
        return None;
    }
    let exp = claims.get("exp")?.as_u64()?;
    let now = now();
    if (exp as i128 - now as i128).abs() <= 5 {
        return None;
    }
    if (exp as i128) < now as i128 {
        return Some(Err(TokenError::Expired));
    }
    let token_type = match claims.get("token_type").and_then(Value::as_str) {
        None => return Some(Err(TokenError::NoType)),
        Some("access") => TokenType::Access,
        Some("refresh") => TokenType::Refresh,
        Some(_) => return Some(Err(TokenError::WrongType)),
    };
    let jti = match claims.get("jti").and_then(Value::as_str) {
        Some(j) if !j.is_empty() => j.to_string(),
        _ => return Some(Err(TokenError::NoId)),
    };
    let user_id = match claims.get("user_id") {
        Some(Value::String(s)) => s.parse().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    // Past year 5000 the answer depends on i64 and chrono's range: not modelled.
    if exp > 95_617_584_000 {
        return None;
    }
    Some(Ok((token_type, jti, user_id, exp as i64)))
}

fn split_header(data: &[u8]) {
    let parsed = parse_authorization(data);
    // An independent reading: ASCII-whitespace-separated words of the (lossy) text.
    let text = String::from_utf8_lossy(data);
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    match (words.as_slice(), parsed) {
        (["Bearer", word], AuthorizationHeader::Bearer(token)) => {
            assert_eq!(String::from_utf8_lossy(token), *word);
            if let Ok(token) = std::str::from_utf8(token) {
                let _ = check(token);
            }
        }
        (["Bearer", ..], AuthorizationHeader::Malformed) => {}
        (words, AuthorizationHeader::Other) if words.first() != Some(&"Bearer") => {}
        (words, parsed) => panic!("header {data:?} ({words:?}) read as {parsed:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.first() == Some(&b'{') {
        let (header, claims) = match data.iter().position(|&b| b == b'\n') {
            Some(i) => (&data[..i], &data[i + 1..]),
            None => (DEFAULT_HEADER, data),
        };
        let _ = check(&sign(header, claims));
        // The same claims, canonical and under the default header, against the model.
        if let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(claims) {
            let token = sign(DEFAULT_HEADER, &serde_json::to_vec(&claims).unwrap());
            let got = check(&token);
            if let Some(expected) = model(&claims) {
                let got = got.map(|v| (v.token_type, v.jti, v.user_id, v.expires_at.timestamp()));
                assert_eq!(got, expected, "claims {claims:?}");
            }
        }
    } else {
        split_header(data);
        if let Ok(token) = std::str::from_utf8(data) {
            let _ = check(token);
        }
    }
});
