//! The admin console at `/admin/` **(beyond)**: plain HTML, CSS and JavaScript modules
//! compiled into the binary, running in the browser on the JSON API alone. No build step,
//! no npm: the files under `assets/` are what the browser gets.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::error::ApiError;

/// The console's Content-Security-Policy: its own scripts, styles and API only; no
/// inline script or style, no other origin, no framing, no form posts, no `<base>`.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// name → (content type, contents).
const ASSETS: &[(&str, &str, &str)] = &[
    ("index.html", HTML, include_str!("assets/index.html")),
    ("admin.css", CSS, include_str!("assets/admin.css")),
    ("app.js", JS, include_str!("assets/app.js")),
    ("api.js", JS, include_str!("assets/api.js")),
    ("dom.js", JS, include_str!("assets/dom.js")),
    ("events.js", JS, include_str!("assets/events.js")),
    ("users.js", JS, include_str!("assets/users.js")),
    ("outbox.js", JS, include_str!("assets/outbox.js")),
];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Every asset by name, for tests that check them.
pub fn assets() -> impl Iterator<Item = (&'static str, &'static str)> {
    ASSETS.iter().map(|(name, _, body)| (*name, *body))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Not `http::resource`: these are pages, not API operations for the OpenAPI document.
    cfg.service(web::resource("/admin").route(web::get().to(|| async {
        HttpResponse::MovedPermanently()
            .insert_header((header::LOCATION, "/admin/"))
            .finish()
    })))
    .service(web::resource("/admin/").route(web::get().to(|| async { asset("index.html") })))
    .service(
        web::resource("/admin/{name}")
            .route(web::get().to(|name: web::Path<String>| async move { asset(&name) })),
    );
}

fn asset(name: &str) -> Result<HttpResponse, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok()
        .content_type(*content_type)
        // Revalidated on each load, so a new binary's console is picked up at once.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(*body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the CSP enforces in the browser, checked in the source too: no inline script
    /// or handler, no inline style, nothing from another origin.
    #[test]
    fn the_page_has_no_inline_script_style_or_outside_url() {
        let (_, html) = assets()
            .find(|(name, _)| *name == "index.html")
            .expect("index.html");
        for tag in html.split("<script").skip(1) {
            let open = tag.split('>').next().unwrap_or("");
            assert!(open.contains(" src="), "inline script: <script{open}>");
        }
        let lower = html.to_ascii_lowercase();
        for needle in [
            " onclick=",
            " onload=",
            " onerror=",
            " style=",
            "<style",
            "javascript:",
        ] {
            assert!(!lower.contains(needle), "index.html contains {needle:?}");
        }
        for (name, body) in assets() {
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "{name} names another origin"
            );
        }
    }

    /// Text from the API becomes text nodes: no asset parses a string as HTML or code.
    #[test]
    fn scripts_never_parse_strings_as_html_or_code() {
        for (name, body) in assets().filter(|(name, _)| name.ends_with(".js")) {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                "setAttribute('style'",
                "createContextualFragment",
            ] {
                assert!(!body.contains(sink), "{name} uses {sink}");
            }
        }
    }

    #[test]
    fn every_module_the_page_imports_is_served() {
        for (name, body) in assets().filter(|(name, _)| name.ends_with(".js")) {
            for import in body.split("from './").skip(1) {
                let module = import.split('\'').next().unwrap_or("");
                assert!(
                    assets().any(|(n, _)| n == module),
                    "{name} imports {module}, which is not served"
                );
            }
        }
    }
}
