//! Captured HTTP requests stored as JSON in `tests/fixtures/` ([`FIXTURE_DIR`]),
//! turned back into requests for decoder, handler and end-to-end tests.
//!
//! File format:
//!
//! ```json
//! {
//!   "description": "what this is and where it came from",
//!   "method": "POST",
//!   "path": "/?__GCP_CloudEventsMode=…",
//!   "headers": { "content-type": "application/json", "ce-id": "…" },
//!   "body": "raw body text, byte for byte"
//! }
//! ```
//!
//! `body` is either a string (the raw body, kept exactly: the emulator escapes
//! `/` as `\/`, for one) or any other JSON value (sent as compact JSON).
//!
//! Every fixture is the recipe's create of `test-entity-001`; [`WRAPPED`] and
//! [`UNWRAPPED`] list them by delivery form.

use anyhow::{Context, Result};
use axum::body::Body;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the fixtures live: `tests/fixtures/` of the workspace.
pub const FIXTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");

/// The fixtures that wrap the message: CloudEvents (binary, structured) and
/// Pub/Sub push envelopes (Google's, the emulator's).
pub const WRAPPED: [&str; 4] = [
    "cloudevent_binary.json",
    "cloudevent_structured.json",
    "push_plain.json",
    "push_emulator.json",
];

/// The unwrapped pushes (`noWrapper`): the emulator's with and without
/// write-metadata, and the documentation's.
pub const UNWRAPPED: [&str; 3] = [
    "push_unwrapped_emulator.json",
    "push_unwrapped_emulator_no_metadata.json",
    "push_unwrapped_docs.json",
];

/// Every fixture: [`WRAPPED`] then [`UNWRAPPED`].
pub fn all() -> impl Iterator<Item = &'static str> {
    WRAPPED.into_iter().chain(UNWRAPPED)
}

/// One captured request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedRequest {
    /// What it is and where it came from.
    pub description: String,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, as captured.
    pub headers: BTreeMap<String, String>,
    /// The body, byte for byte.
    pub body: Vec<u8>,
}

#[derive(Deserialize)]
struct FixtureFile {
    #[serde(default)]
    description: String,
    #[serde(default = "default_method")]
    method: String,
    #[serde(default = "default_path")]
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: serde_json::Value,
}

fn default_method() -> String {
    "POST".into()
}

fn default_path() -> String {
    "/".into()
}

/// The fixture `name` (a file name in [`FIXTURE_DIR`]).
///
/// # Panics
/// When it is missing or not a fixture: the test cannot run without it.
pub fn fixture(name: &str) -> CapturedRequest {
    CapturedRequest::load(name).unwrap_or_else(|e| panic!("{e:#}"))
}

impl CapturedRequest {
    /// A `POST /` with `headers` and `body`.
    pub fn post(headers: &[(&str, &str)], body: Vec<u8>) -> Self {
        Self {
            description: String::new(),
            method: "POST".into(),
            path: "/".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body,
        }
    }

    /// Reads the fixture `name` from [`FIXTURE_DIR`].
    ///
    /// # Errors
    /// When the file is unreadable or not a fixture (the path is in the message).
    pub fn load(name: &str) -> Result<Self> {
        let path = PathBuf::from(FIXTURE_DIR).join(name);
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("{}", path.display()))
    }

    /// Parses a fixture file's text.
    ///
    /// # Errors
    /// When the text is not a fixture.
    pub fn from_json(text: &str) -> Result<Self> {
        let file: FixtureFile = serde_json::from_str(text).context("fixture is not valid")?;
        let body = match file.body {
            serde_json::Value::String(raw) => raw.into_bytes(),
            other => serde_json::to_vec(&other)?,
        };
        Ok(Self {
            description: file.description,
            method: file.method,
            path: file.path,
            headers: file.headers,
            body,
        })
    }

    /// The method, parsed.
    ///
    /// # Errors
    /// When it is not a valid method.
    pub fn http_method(&self) -> Result<Method> {
        Method::from_bytes(self.method.as_bytes()).context("fixture method")
    }

    /// The headers, as an `http` header map.
    ///
    /// # Errors
    /// When a name or value is not valid HTTP.
    pub fn header_map(&self) -> Result<HeaderMap> {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            let value = HeaderValue::from_str(value).with_context(|| format!("header {name}"))?;
            map.append(HeaderName::from_bytes(name.as_bytes())?, value);
        }
        Ok(map)
    }

    /// The request, ready for `router.oneshot(…)`.
    ///
    /// # Errors
    /// When the method, path or a header is not valid HTTP.
    pub fn to_request(&self) -> Result<Request<Body>> {
        let mut request = Request::builder()
            .method(self.http_method()?)
            .uri(&self.path)
            .body(Body::from(self.body.clone()))?;
        *request.headers_mut() = self.header_map()?;
        Ok(request)
    }

    /// [`Self::to_request`] for requests built by the tests themselves.
    ///
    /// # Panics
    /// When it is not valid HTTP: the test built it wrong.
    pub fn request(&self) -> Request<Body> {
        self.to_request().unwrap_or_else(|e| panic!("{e:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_fixture_loads_as_a_request() -> Result<()> {
        for name in all() {
            CapturedRequest::load(name)?.to_request()?;
        }
        let listed: Vec<&str> = all().collect();
        for entry in std::fs::read_dir(FIXTURE_DIR)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            assert!(listed.contains(&name.as_str()), "{name} is not listed");
        }
        Ok(())
    }
}
