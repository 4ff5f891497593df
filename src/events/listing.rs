//! `GET /api/events/` parameters: filters, ordering and limit/offset paging, each checked
//! and reported by name, and the `Link` header that carries the paging.

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::json;

use super::types::Viewer;
use crate::error::{ApiError, FieldErrors};
use crate::validation::{DATETIME_FORMAT, parse_date, parse_datetime};

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;
const MAX_SEARCH_CHARS: usize = 200;
const MAX_SEARCH_TERMS: usize = 10;

/// The list parameters a sync (`updated_since`) refuses.
const SYNC_EXCLUSIVE: [&str; 8] = [
    "search",
    "organizer",
    "date_after",
    "date_before",
    "starts_after",
    "starts_before",
    "ordering",
    "offset",
];

/// A sort key a client may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Date,
    /// Events without a start time come last either way.
    StartsAt,
    Name,
    /// The organizer's username; events without one come last either way.
    Organizer,
    GoingCount,
    MaybeCount,
    NotGoingCount,
    WaitlistCount,
}

impl SortKey {
    /// The `ordering` names, as the list's fields are called.
    pub const NAMES: [(&'static str, SortKey); 8] = [
        ("date", SortKey::Date),
        ("starts_at", SortKey::StartsAt),
        ("name", SortKey::Name),
        ("organizer", SortKey::Organizer),
        ("going_count", SortKey::GoingCount),
        ("maybe_count", SortKey::MaybeCount),
        ("not_going_count", SortKey::NotGoingCount),
        ("waitlist_count", SortKey::WaitlistCount),
    ];
}

/// One `ordering` term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

/// The parsed parameters of a list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Every term must occur in the name, case-insensitively.
    pub search: Vec<String>,
    pub organizer: Option<i64>,
    pub date_after: Option<NaiveDate>,
    pub date_before: Option<NaiveDate>,
    /// `starts_at` on or after, UTC.
    pub starts_after: Option<NaiveDateTime>,
    /// `starts_at` on or before, UTC.
    pub starts_before: Option<NaiveDateTime>,
    /// Who asks: drafts and unlisted events are listed only for their organizer and staff.
    pub viewer: Viewer,
    /// Empty means the default: date, then id.
    pub ordering: Vec<Sort>,
    pub limit: i64,
    pub offset: i64,
    /// Incremental sync (§15): changes at or after this instant, UTC, instead of a page.
    pub updated_since: Option<NaiveDateTime>,
}

/// DRF's `search_smart_split`: terms split on whitespace and commas; a double-quoted
/// phrase stays one term.
pub fn split_search(raw: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in raw.chars() {
        match c {
            '"' => {
                quoted = !quoted;
            }
            c if !quoted && (c.is_whitespace() || c == ',') => {
                if !current.is_empty() {
                    terms.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        terms.push(current);
    }
    terms
}

fn error(errors: &mut FieldErrors, param: &str, message: String) {
    errors.insert(param.to_string(), json!([message]));
}

fn integer(errors: &mut FieldErrors, param: &str, raw: &str, min: i64) -> Option<i64> {
    match raw.trim().parse::<i64>() {
        Ok(n) if n >= min => Some(n),
        Ok(_) => {
            error(
                errors,
                param,
                format!("Ensure this value is greater than or equal to {min}."),
            );
            None
        }
        Err(_) => {
            error(errors, param, "A valid integer is required.".into());
            None
        }
    }
}

/// The `search` parameter as terms; a problem is recorded under `search`.
pub fn search_terms(raw: Option<&str>, errors: &mut FieldErrors) -> Vec<String> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    if raw.contains('\0') {
        // PostgreSQL text cannot hold NUL; no stored text contains one.
        error(errors, "search", "Null characters are not allowed.".into());
    } else if raw.chars().count() > MAX_SEARCH_CHARS {
        error(
            errors,
            "search",
            format!("Ensure this value has at most {MAX_SEARCH_CHARS} characters."),
        );
    } else {
        let terms = split_search(raw);
        if terms.len() > MAX_SEARCH_TERMS {
            error(
                errors,
                "search",
                format!("Use at most {MAX_SEARCH_TERMS} search terms."),
            );
        } else {
            return terms;
        }
    }
    Vec::new()
}

/// `limit` (default 100, capped at 1000, as DRF caps at `max_limit`) and `offset`;
/// problems are recorded under their names.
pub fn paging(limit: Option<&str>, offset: Option<&str>, errors: &mut FieldErrors) -> (i64, i64) {
    paging_within(limit, offset, errors, DEFAULT_LIMIT, MAX_LIMIT)
}

/// `paging` with another default and cap (a delivery log pages by 50, up to 200).
pub fn paging_within(
    limit: Option<&str>,
    offset: Option<&str>,
    errors: &mut FieldErrors,
    default: i64,
    max: i64,
) -> (i64, i64) {
    let limit = limit
        .and_then(|raw| integer(errors, "limit", raw, 1))
        .map_or(default, |n| n.min(max));
    let offset = offset
        .and_then(|raw| integer(errors, "offset", raw, 0))
        .unwrap_or(0);
    (limit, offset)
}

impl ListQuery {
    /// Parses the query string; the last value of a repeated parameter wins, as in Django.
    /// Unknown parameters are ignored; every bad one is named in a single 400.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let get = |name: &str| crate::http::last_param(pairs, name);
        let mut errors = FieldErrors::new();
        let mut query = Self {
            search: Vec::new(),
            organizer: None,
            date_after: None,
            date_before: None,
            starts_after: None,
            starts_before: None,
            viewer: Viewer::of(None),
            ordering: Vec::new(),
            limit: DEFAULT_LIMIT,
            offset: 0,
            updated_since: None,
        };
        query.search = search_terms(get("search"), &mut errors);
        if let Some(raw) = get("organizer").filter(|r| !r.is_empty()) {
            match raw.trim().parse::<i64>() {
                Ok(id) => query.organizer = Some(id),
                Err(_) => error(&mut errors, "organizer", "Enter a number.".into()),
            }
        }
        for (param, slot) in [
            ("date_after", &mut query.date_after),
            ("date_before", &mut query.date_before),
        ] {
            if let Some(raw) = get(param).filter(|r| !r.is_empty()) {
                match parse_date(raw.trim()) {
                    Some(d) => *slot = Some(d),
                    None => error(&mut errors, param, "Enter a valid date.".into()),
                }
            }
        }
        for (param, slot) in [
            ("starts_after", &mut query.starts_after),
            ("starts_before", &mut query.starts_before),
        ] {
            if let Some(raw) = get(param).filter(|r| !r.is_empty()) {
                match parse_datetime(raw.trim()) {
                    Some(t) => *slot = Some(t.naive_utc()),
                    None => error(&mut errors, param, DATETIME_FORMAT.into()),
                }
            }
        }
        if let Some(raw) = get("ordering").filter(|r| !r.is_empty()) {
            for term in raw.split(',').map(str::trim) {
                let (descending, name) = match term.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, term),
                };
                let Some(&(_, key)) = SortKey::NAMES.iter().find(|(n, _)| *n == name) else {
                    let choices = SortKey::NAMES
                        .iter()
                        .map(|(n, _)| format!("{n}, -{n}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    error(
                        &mut errors,
                        "ordering",
                        format!("Select a valid choice. {term:?} is not one of {choices}."),
                    );
                    break;
                };
                if !query.ordering.iter().any(|s| s.key == key) {
                    query.ordering.push(Sort { key, descending });
                }
            }
        }
        (query.limit, query.offset) = paging(get("limit"), get("offset"), &mut errors);
        if let Some(raw) = get("updated_since").filter(|r| !r.is_empty()) {
            match parse_datetime(raw.trim()) {
                Some(t) => query.updated_since = Some(t.naive_utc()),
                None => error(&mut errors, "updated_since", DATETIME_FORMAT.into()),
            }
            // A sync pages by change time and must see every change: an ordering or an
            // offset would break its paging, and a filter would hide an event that
            // stops matching it instead of reporting it gone.
            for param in SYNC_EXCLUSIVE {
                if get(param).is_some_and(|r| !r.is_empty()) {
                    error(
                        &mut errors,
                        param,
                        "Cannot be combined with updated_since.".into(),
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(query)
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

/// The RFC 8288 `Link` header for a page: `next` while rows remain, `prev` past the first.
/// Other parameters are kept as the client sent them.
pub fn link_header(
    base_url: &str,
    pairs: &[(String, String)],
    limit: i64,
    offset: i64,
    total: i64,
) -> Option<String> {
    let page_url = |offset: i64| {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs.iter().filter(|(k, _)| k != "limit" && k != "offset") {
            serializer.append_pair(k, v);
        }
        serializer.append_pair("limit", &limit.to_string());
        if offset > 0 {
            serializer.append_pair("offset", &offset.to_string());
        }
        format!("{base_url}?{}", serializer.finish())
    };
    let mut links = Vec::new();
    if offset.saturating_add(limit) < total {
        links.push(format!("<{}>; rel=\"next\"", page_url(offset + limit)));
    }
    if offset > 0 {
        let prev = (offset - limit).max(0).min(total.max(0));
        links.push(format!("<{}>; rel=\"prev\"", page_url(prev)));
    }
    (!links.is_empty()).then(|| links.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn search_splits_like_drf() {
        assert_eq!(split_search("rust, meetup"), vec!["rust", "meetup"]);
        assert_eq!(
            split_search("\"rust meetup\" berlin"),
            vec!["rust meetup", "berlin"]
        );
        assert!(split_search("  ,, ").is_empty());
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let Err(ApiError::Validation(errors)) = ListQuery::parse(&pairs(
            "limit=x&offset=-1&ordering=size&date_after=2026-13-01&organizer=me",
        )) else {
            panic!("expected errors")
        };
        for name in ["limit", "offset", "ordering", "date_after", "organizer"] {
            assert!(errors.contains_key(name), "{name} missing from {errors:?}");
        }
    }

    #[test]
    fn ordering_takes_every_listed_column() {
        let q = ListQuery::parse(&pairs("ordering=-going_count,organizer,name")).unwrap();
        assert_eq!(
            q.ordering,
            vec![
                Sort {
                    key: SortKey::GoingCount,
                    descending: true
                },
                Sort {
                    key: SortKey::Organizer,
                    descending: false
                },
                Sort {
                    key: SortKey::Name,
                    descending: false
                },
            ]
        );
        assert!(ListQuery::parse(&pairs("ordering=organizer_id")).is_err());
    }

    #[test]
    fn updated_since_is_checked_and_exclusive() {
        let q = ListQuery::parse(&pairs("updated_since=2026-11-22T10:00:00.5%2B01:00")).unwrap();
        assert_eq!(
            q.updated_since.map(|t| t.to_string()),
            Some("2026-11-22 09:00:00.500".into())
        );
        let Err(ApiError::Validation(errors)) = ListQuery::parse(&pairs("updated_since=yesterday"))
        else {
            panic!("expected errors")
        };
        assert!(errors.contains_key("updated_since"));
        let Err(ApiError::Validation(errors)) = ListQuery::parse(&pairs(
            "updated_since=2026-11-22T10:00:00Z&ordering=name&offset=5&search=x",
        )) else {
            panic!("expected errors")
        };
        for name in ["ordering", "offset", "search"] {
            assert!(errors.contains_key(name), "{name} missing from {errors:?}");
        }
    }

    #[test]
    fn nul_in_search_is_refused() {
        assert!(ListQuery::parse(&pairs("search=a%00b")).is_err());
    }

    #[test]
    fn limit_is_capped_and_defaults() {
        assert_eq!(
            ListQuery::parse(&pairs("limit=5000")).unwrap().limit,
            MAX_LIMIT
        );
        assert_eq!(ListQuery::parse(&pairs("")).unwrap().limit, DEFAULT_LIMIT);
        assert!(ListQuery::parse(&pairs("limit=0")).is_err());
    }

    #[test]
    fn links_point_both_ways() {
        let p = pairs("search=x&limit=10&offset=10");
        let q = ListQuery::parse(&p).unwrap();
        let link = link_header("http://h/api/events/", &p, q.limit, q.offset, 25).unwrap();
        assert!(link.contains("<http://h/api/events/?search=x&limit=10&offset=20>; rel=\"next\""));
        assert!(link.contains("<http://h/api/events/?search=x&limit=10>; rel=\"prev\""));
        let last = ListQuery::parse(&pairs("limit=10&offset=20")).unwrap();
        let link = link_header("http://h/api/events/", &[], last.limit, last.offset, 25).unwrap();
        assert!(!link.contains("next"));
    }
}
