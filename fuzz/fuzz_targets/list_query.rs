//! Query-string parsing, as `GET /api/events/` does it: the raw query string through
//! `url::form_urlencoded::parse` into pairs (what `rally::http::query_pairs` does), then
//! `ListQuery::parse`, then the `Link` header built from the result.
//!
//! Checked beyond "no panic":
//! - on `Ok`: limit in 1..=1000 (100 when absent), offset >= 0, at most 10 non-empty search
//!   terms with no `"`, at most one ordering term per key, organizer and dates equal to what
//!   the last such parameter says;
//! - on `Err`: a 400 naming only the list parameters, each with a message;
//! - the `Link` header is a valid header value, and its `next`/`prev` URLs parse back into
//!   the same query, moved by one page;
//! - `split_search` on the raw text agrees with a plain split when there are no quotes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rally::error::ApiError;
use rally::events::listing::{
    DEFAULT_LIMIT, ListQuery, MAX_LIMIT, SortKey, link_header, split_search,
};
use rally::validation::parse_date;

const BASE: &str = "http://rally.test/api/events/";
const PARAMS: [&str; 7] = [
    "search",
    "organizer",
    "date_after",
    "date_before",
    "ordering",
    "limit",
    "offset",
];

fn pairs(query: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn last<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn check_ok(pairs: &[(String, String)], q: &ListQuery) {
    assert!((1..=MAX_LIMIT).contains(&q.limit), "limit {}", q.limit);
    assert!(q.offset >= 0, "offset {}", q.offset);
    if last(pairs, "limit").is_none() {
        assert_eq!(q.limit, DEFAULT_LIMIT);
    }
    if last(pairs, "offset").is_none() {
        assert_eq!(q.offset, 0);
    }
    assert!(q.search.len() <= 10);
    for term in &q.search {
        assert!(
            !term.is_empty() && !term.contains('"'),
            "search term {term:?}"
        );
    }
    // One term per sort key: at most one per column.
    assert!(q.ordering.len() <= SortKey::NAMES.len());
    for (i, a) in q.ordering.iter().enumerate() {
        assert!(q.ordering[i + 1..].iter().all(|b| b.key != a.key), "{:?}", q.ordering);
    }
    match last(pairs, "organizer").filter(|r| !r.is_empty()) {
        Some(raw) => assert_eq!(q.organizer, Some(raw.trim().parse().unwrap())),
        None => assert_eq!(q.organizer, None),
    }
    for (name, date) in [("date_after", q.date_after), ("date_before", q.date_before)] {
        let raw = last(pairs, name).filter(|r| !r.is_empty());
        assert_eq!(date, raw.and_then(|r| parse_date(r.trim())));
        if let Some(d) = date {
            // What the server reads, it can write back and read again.
            assert_eq!(parse_date(&d.format("%Y-%m-%d").to_string()), Some(d));
        }
    }
}

/// A `Link` header's target for `rel`, read back as a query.
fn linked(link: &str, rel: &str) -> Option<ListQuery> {
    let entry = link
        .split(", <")
        .find(|e| e.ends_with(&format!("; rel=\"{rel}\"")))?;
    let url = entry.trim_start_matches('<').split(">;").next().unwrap();
    let query = url
        .strip_prefix(BASE)
        .and_then(|u| u.strip_prefix('?'))
        .unwrap_or_else(|| panic!("{rel} link {url:?} is not under {BASE}"));
    match ListQuery::parse(&pairs(query.as_bytes())) {
        Ok(q) => Some(q),
        Err(e) => panic!("{rel} link {url:?} does not parse: {e:?}"),
    }
}

fn check_links(pairs: &[(String, String)], q: &ListQuery, total: i64) {
    let Some(link) = link_header(BASE, pairs, q.limit, q.offset, total) else {
        assert!(q.offset == 0 && q.offset + q.limit >= total);
        return;
    };
    assert!(
        link.bytes().all(|b| b == b' ' || b.is_ascii_graphic()),
        "Link is not a header value: {link:?}"
    );
    let moved = |to: &ListQuery| ListQuery {
        limit: q.limit,
        offset: to.offset,
        ..q.clone()
    };
    match linked(&link, "next") {
        Some(next) => {
            assert!(q.offset.saturating_add(q.limit) < total);
            assert_eq!(next.offset, q.offset + q.limit);
            assert_eq!(next, moved(&next), "next link changed the query");
        }
        None => assert!(q.offset.saturating_add(q.limit) >= total),
    }
    match linked(&link, "prev") {
        Some(prev) => {
            assert!(q.offset > 0);
            assert!(prev.offset < q.offset && prev.offset >= 0);
            assert_eq!(prev, moved(&prev), "prev link changed the query");
        }
        None => assert_eq!(q.offset, 0),
    }
}

fuzz_target!(|data: &[u8]| {
    let pairs = pairs(data);
    match ListQuery::parse(&pairs) {
        Ok(q) => {
            check_ok(&pairs, &q);
            for total in [
                0,
                1,
                q.limit,
                q.offset,
                q.offset.saturating_add(q.limit).saturating_add(1),
                i64::MAX,
            ] {
                check_links(&pairs, &q, total);
            }
        }
        Err(ApiError::Validation(errors)) => {
            assert!(!errors.is_empty());
            for (name, messages) in &errors {
                assert!(
                    PARAMS.contains(&name.as_str()),
                    "error on unknown parameter {name:?}"
                );
                assert!(messages.as_array().is_some_and(|m| !m.is_empty()));
            }
        }
        Err(other) => panic!("a query string gave {other:?}, not a 400"),
    }

    if let Ok(text) = std::str::from_utf8(data) {
        let terms = split_search(text);
        assert!(terms.iter().all(|t| !t.is_empty() && !t.contains('"')));
        if !text.contains('"') {
            let plain: Vec<&str> = text
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|t| !t.is_empty())
                .collect();
            assert_eq!(terms, plain);
        }
    }
});
