//! Conditional requests (RFC 9110 §13): strong `ETag`s on the event list and detail,
//! `If-None-Match` → 304, and `If-Match` on changes → 412, so that two organizers editing
//! one event cannot silently overwrite each other.

use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// A strong validator for a representation: the first 128 bits of the SHA-256 of its
/// bytes, quoted. `parts` are hashed with their lengths, so no two splits collide.
pub fn etag_of(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    format!("\"{}\"", crate::secrets::hex(&hasher.finalize()[..16]))
}

/// One entry of an `If-Match` / `If-None-Match` list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tag {
    Any,
    /// The quoted tag, quotes included, and whether it had the `W/` prefix.
    Entity {
        tag: String,
        weak: bool,
    },
}

/// The entries of every value of `name`. A malformed entry is skipped: it can match
/// nothing, which is what an unreadable validator deserves.
fn tags(headers: &HeaderMap, name: header::HeaderName) -> Option<Vec<Tag>> {
    let mut found = false;
    let mut out = Vec::new();
    for value in headers.get_all(name) {
        found = true;
        let Ok(value) = value.to_str() else { continue };
        let mut rest = value;
        loop {
            rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
            if rest.is_empty() {
                break;
            }
            if let Some(after) = rest.strip_prefix('*') {
                out.push(Tag::Any);
                rest = after;
                continue;
            }
            let (weak, quoted) = match rest.strip_prefix("W/") {
                Some(q) => (true, q),
                None => (false, rest),
            };
            // A quoted tag may itself hold commas, so read up to the closing quote.
            if let Some(body) = quoted.strip_prefix('"')
                && let Some(end) = body.find('"')
            {
                out.push(Tag::Entity {
                    tag: format!("\"{}\"", &body[..end]),
                    weak,
                });
                rest = &body[end + 1..];
            } else {
                rest = rest.find(',').map_or("", |i| &rest[i..]);
            }
        }
    }
    found.then_some(out)
}

/// `If-None-Match` holds `etag` (weak comparison, as RFC 9110 §13.1.2 asks) or `*`.
pub fn none_match_hits(headers: &HeaderMap, etag: &str) -> bool {
    tags(headers, header::IF_NONE_MATCH).is_some_and(|tags| {
        tags.iter().any(|t| match t {
            Tag::Any => true,
            Tag::Entity { tag, .. } => tag == etag,
        })
    })
}

/// What a change was made against, from `If-Match`; `None` when the header is absent,
/// and the change goes ahead unconditionally, as it always did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: the event must exist, nothing more.
    Any,
    /// The strong tags listed (weak ones never match a strong comparison).
    Tags(Vec<String>),
}

impl IfMatch {
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let tags = tags(headers, header::IF_MATCH)?;
        if tags.contains(&Tag::Any) {
            return Some(Self::Any);
        }
        Some(Self::Tags(
            tags.into_iter()
                .filter_map(|t| match t {
                    Tag::Entity { tag, weak: false } => Some(tag),
                    _ => None,
                })
                .collect(),
        ))
    }

    /// Whether the current representation's tag still satisfies the condition;
    /// `current` is only computed when a tag has to be compared.
    pub fn holds(
        &self,
        current: impl FnOnce() -> Result<String, ApiError>,
    ) -> Result<bool, ApiError> {
        match self {
            Self::Any => Ok(true),
            Self::Tags(tags) if tags.is_empty() => Ok(false),
            Self::Tags(tags) => {
                let current = current()?;
                Ok(tags.contains(&current))
            }
        }
    }
}

/// `value` as JSON bytes: what is hashed is what is sent.
pub fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(ApiError::internal)
}

/// A 200 with `body` (JSON bytes) and `etag`, or a bodiless 304 when the client holds
/// that version already. `response` carries the other headers, sent on both.
pub fn ok_or_not_modified(
    request: &HeaderMap,
    mut response: HttpResponseBuilder,
    body: Vec<u8>,
    etag: String,
) -> HttpResponse {
    if none_match_hits(request, &etag) {
        let mut not_modified = HttpResponse::NotModified();
        not_modified.insert_header((header::ETAG, etag));
        return not_modified.finish();
    }
    response
        .insert_header((header::ETAG, etag))
        .content_type("application/json")
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn headers(name: header::HeaderName, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(name.clone(), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn etags_are_quoted_hex_and_depend_on_every_part() {
        let a = etag_of(&[b"ab", b"c"]);
        assert_eq!(a.len(), 34);
        assert!(a.starts_with('"') && a.ends_with('"'));
        assert_ne!(a, etag_of(&[b"a", b"bc"]));
        assert_eq!(a, etag_of(&[b"ab", b"c"]));
    }

    #[test]
    fn if_none_match_compares_weakly_and_reads_lists() {
        let tag = "\"abc\"";
        let hit = |values: &[&str]| none_match_hits(&headers(header::IF_NONE_MATCH, values), tag);
        assert!(hit(&["\"abc\""]));
        assert!(hit(&["W/\"abc\""]));
        assert!(hit(&["\"x,y\", \"abc\""]));
        assert!(hit(&["\"x\"", "\"abc\""]));
        assert!(hit(&["*"]));
        assert!(!hit(&["\"abcd\""]));
        assert!(!hit(&["abc"]));
        assert!(!none_match_hits(&HeaderMap::new(), tag));
    }

    #[test]
    fn if_match_compares_strongly() {
        let read = |v: &str| IfMatch::from_headers(&headers(header::IF_MATCH, &[v]));
        let current = || Ok("\"abc\"".to_string());
        assert_eq!(IfMatch::from_headers(&HeaderMap::new()), None);
        assert!(read("\"abc\"").unwrap().holds(current).unwrap());
        assert!(read("\"x\", \"abc\"").unwrap().holds(current).unwrap());
        assert!(read("*").unwrap().holds(|| unreachable!()).unwrap());
        assert!(!read("W/\"abc\"").unwrap().holds(current).unwrap());
        assert!(!read("garbage").unwrap().holds(current).unwrap());
        assert!(!read("\"abd\"").unwrap().holds(current).unwrap());
    }
}
