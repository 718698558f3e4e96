//! Captured HTTP requests stored as JSON (`tests/fixtures/*.json`), turned back
//! into requests for decoder and handler tests.
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

use axum::body::Body;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use serde::Deserialize;
use std::collections::BTreeMap;
use thiserror::Error;

/// A fixture file that cannot be used.
#[derive(Debug, Error)]
pub enum FixtureError {
    /// The file is not JSON of the fixture shape.
    #[error("fixture is not valid: {0}")]
    Invalid(String),
    /// A method, header or path is not valid HTTP.
    #[error("fixture is not a valid HTTP request: {0}")]
    Http(String),
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

impl CapturedRequest {
    /// Parses a fixture file's text.
    ///
    /// # Errors
    /// When the text is not a fixture.
    pub fn from_json(text: &str) -> Result<Self, FixtureError> {
        let file: FixtureFile =
            serde_json::from_str(text).map_err(|e| FixtureError::Invalid(e.to_string()))?;
        let body = match file.body {
            serde_json::Value::String(raw) => raw.into_bytes(),
            other => {
                serde_json::to_vec(&other).map_err(|e| FixtureError::Invalid(e.to_string()))?
            }
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
    pub fn http_method(&self) -> Result<Method, FixtureError> {
        Method::from_bytes(self.method.as_bytes()).map_err(|e| FixtureError::Http(e.to_string()))
    }

    /// The headers, as an `http` header map.
    ///
    /// # Errors
    /// When a name or value is not valid HTTP.
    pub fn header_map(&self) -> Result<HeaderMap, FixtureError> {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| FixtureError::Http(format!("{name}: {e}")))?;
            let value =
                HeaderValue::from_str(value).map_err(|e| FixtureError::Http(e.to_string()))?;
            map.append(name, value);
        }
        Ok(map)
    }

    /// The request, ready for `router.oneshot(…)`.
    ///
    /// # Errors
    /// When the method, path or a header is not valid HTTP.
    pub fn to_request(&self) -> Result<Request<Body>, FixtureError> {
        let mut request = Request::builder()
            .method(self.http_method()?)
            .uri(&self.path)
            .body(Body::from(self.body.clone()))
            .map_err(|e| FixtureError::Http(e.to_string()))?;
        *request.headers_mut() = self.header_map()?;
        Ok(request)
    }
}
