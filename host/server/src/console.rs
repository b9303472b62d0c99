//! The web console at `/console`: static assets embedded in the binary
//! (`host/server/console/static/` as written, `dist/` as TypeScript
//! compiles `src/`), and two small documents the page reads before it
//! signs anything: `config.json` (whether the API needs a signature) and
//! `event-templates.json` (`fnhost event`'s samples).
//!
//! The console is a client of the API like any other: with access keys it
//! signs its calls in the browser (SDK-HMAC-SHA256 through WebCrypto) with
//! a key and secret it keeps in the tab's session storage, so the server's
//! authentication is the same for it as for the SDKs. The assets are
//! anonymous (they hold no secret) and are served with a content security
//! policy that allows only this origin's scripts and styles, no inline
//! script, and no framing: text from functions (names, outputs, logs) is
//! only ever inserted as text.

use std::sync::LazyLock;

use axum::extract::{Path, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::state::Shared;

/// The project id the console uses when the server has no access keys.
pub const DEFAULT_PROJECT: &str = "local";

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

macro_rules! assets {
    ($($name:literal from $dir:literal as $type:literal;)*) => {
        &[$(Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../console/", $dir, "/", $name)),
        }),*]
    };
}

/// One embedded file.
pub(crate) struct Asset {
    pub(crate) name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Every file of the console (a test holds this list to the directories).
pub(crate) const ASSETS: &[Asset] = assets! {
    "index.html" from "static" as "text/html; charset=utf-8";
    "console.css" from "static" as "text/css; charset=utf-8";
    "favicon.svg" from "static" as "image/svg+xml";
    "api.js" from "dist" as "text/javascript; charset=utf-8";
    "charts.js" from "dist" as "text/javascript; charset=utf-8";
    "dom.js" from "dist" as "text/javascript; charset=utf-8";
    "function.js" from "dist" as "text/javascript; charset=utf-8";
    "functions.js" from "dist" as "text/javascript; charset=utf-8";
    "main.js" from "dist" as "text/javascript; charset=utf-8";
    "monitoring.js" from "dist" as "text/javascript; charset=utf-8";
    "sign.js" from "dist" as "text/javascript; charset=utf-8";
    "test.js" from "dist" as "text/javascript; charset=utf-8";
    "zip.js" from "dist" as "text/javascript; charset=utf-8";
};

/// Each asset's entity tag (a prefix of its SHA-256), computed once.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = hex::encode(Sha256::digest(a.bytes));
            // Quoted hex digits are always a valid header value.
            HeaderValue::from_str(&format!("\"{}\"", &digest[..24]))
                .unwrap_or(HeaderValue::from_static("\"\""))
        })
        .collect()
});

/// `fnhost event`'s samples as one JSON document, built once.
static TEMPLATES: LazyLock<String> = LazyLock::new(|| {
    let templates: Vec<serde_json::Value> = fnhost_api::events::samples::KINDS
        .iter()
        .filter_map(|kind| {
            let sample = fnhost_api::events::samples::sample(kind)?;
            Some(json!({"kind": kind, "event": sample}))
        })
        .collect();
    json!({ "templates": templates }).to_string()
});

fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Revalidated on every load: a new binary's console is seen at once.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn serve(index: usize, request: &HeaderMap) -> Response {
    let asset = &ASSETS[index];
    let etag = ETAGS[index].clone();
    if request.get(IF_NONE_MATCH) == Some(&etag) {
        return secured((StatusCode::NOT_MODIFIED, [(ETAG, etag)]).into_response());
    }
    secured(
        (
            [
                (CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
                (ETAG, etag),
            ],
            asset.bytes,
        )
            .into_response(),
    )
}

/// `GET /console`: to `/console/`, so that the page's relative URLs resolve.
pub(crate) async fn redirect() -> Response {
    secured((StatusCode::PERMANENT_REDIRECT, [(LOCATION, "/console/")]).into_response())
}

/// `GET /console/`: the page.
pub(crate) async fn index(request: HeaderMap) -> Response {
    serve(0, &request)
}

/// `GET /console/{file}`: an asset, or the two documents.
pub(crate) async fn file(
    State(state): State<Shared>,
    Path(name): Path<String>,
    request: HeaderMap,
) -> Response {
    let json = |body: String| secured(([(CONTENT_TYPE, "application/json")], body).into_response());
    match name.as_str() {
        "config.json" => json(
            json!({
                "signed": !state.gate.keys.is_empty(),
                "project_id": DEFAULT_PROJECT,
            })
            .to_string(),
        ),
        "event-templates.json" => json(TEMPLATES.clone()),
        _ => match ASSETS.iter().position(|a| a.name == name) {
            Some(index) => serve(index, &request),
            None => secured(
                crate::error::ApiError::new(
                    StatusCode::NOT_FOUND,
                    "FSS.0404",
                    "no such file in the console",
                )
                .into_response(),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every file of `static/` and `dist/` is embedded, and nothing else.
    #[test]
    fn the_embedded_assets_are_the_console_directories() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk = BTreeSet::new();
        for dir in ["static", "dist"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                on_disk.insert(entry.unwrap().file_name().into_string().unwrap());
            }
        }
        let embedded: BTreeSet<String> = ASSETS.iter().map(|a| a.name.to_owned()).collect();
        assert_eq!(on_disk, embedded);
        assert_eq!(ASSETS[0].name, "index.html");
    }

    /// The console works without internet: no asset loads anything from
    /// another origin (no CDN, no web font).
    #[test]
    fn no_asset_refers_to_another_origin() {
        for asset in ASSETS {
            let text = String::from_utf8_lossy(asset.bytes);
            for needle in ["http://", "https://", "//cdn", "@import", "url(http"] {
                // The SVG namespace is a name, not a request.
                let hits = text
                    .match_indices(needle)
                    .filter(|(i, _)| !text[*i..].starts_with("http://www.w3.org/2000/svg"))
                    .count();
                assert_eq!(hits, 0, "{} mentions {needle}", asset.name);
            }
        }
    }

    #[test]
    fn the_templates_are_fnhost_events_samples() {
        let doc: serde_json::Value = serde_json::from_str(&TEMPLATES).unwrap();
        let kinds: Vec<&str> = doc["templates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, fnhost_api::events::samples::KINDS);
    }
}
