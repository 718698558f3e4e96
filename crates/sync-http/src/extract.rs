//! The axum extractors: a request in, a [`Delivery`] out, body limit enforced
//! before anything is buffered beyond it. A request that is not a delivery is
//! logged here, once, and rejected with its [`DeliveryError`]. [`RawRequest`]
//! reads a request's headers and body under the same limit, for a function
//! whose requests are not Pub/Sub pushes (the capture function's Eventarc
//! events) and that decodes the body itself.

use crate::delivery::{Delivery, DEFAULT_MAX_BODY_BYTES};
use crate::error::DeliveryError;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use http::Method;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// The body limit the [`Delivery`] extractor enforces, read from the request
/// extensions; without one, [`DEFAULT_MAX_BODY_BYTES`].
///
/// ```
/// use axum::{routing::post, Extension, Router};
/// use sync_http::{BodyLimit, Delivery};
///
/// async fn handler(delivery: Delivery) -> String {
///     delivery.message_id
/// }
/// let app: Router = Router::new()
///     .route("/", post(handler))
///     .layer(Extension(BodyLimit(1024 * 1024)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

impl Default for BodyLimit {
    fn default() -> Self {
        Self(DEFAULT_MAX_BODY_BYTES)
    }
}

impl<S: Send + Sync> FromRequest<S> for Delivery {
    type Rejection = DeliveryError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        decode_request(req).await.inspect_err(|e| {
            // A shed request was logged where it was shed.
            if *e != DeliveryError::Shed {
                tracing::warn!(
                    outcome = "rejected",
                    error_code = e.code(),
                    error = %sync_core::logline::excerpt(&e.to_string(), sync_core::logline::FIELD_TEXT_BYTES),
                    "request is not a Pub/Sub delivery"
                );
            }
        })
    }
}

/// A `POST`'s headers and body, the body read whole under the [`BodyLimit`]
/// in the request's extensions (and within the admission's share of memory:
/// [`crate::admission`]). A request that cannot be read is logged once and
/// answered with its [`DeliveryError`] (4xx).
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// The request's headers.
    pub headers: http::HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
}

impl<S: Send + Sync> FromRequest<S> for RawRequest {
    type Rejection = DeliveryError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        read_request(req)
            .await
            .map(|(parts, body)| Self {
                headers: parts.headers,
                body,
            })
            .inspect_err(|e| {
                if *e != DeliveryError::Shed {
                    tracing::warn!(
                        outcome = "rejected",
                        error_code = e.code(),
                        error = %sync_core::logline::excerpt(&e.to_string(), sync_core::logline::FIELD_TEXT_BYTES),
                        "request refused before its body was read"
                    );
                }
            })
    }
}

/// The [`Delivery`] in `req`, read under the [`BodyLimit`] in its extensions.
async fn decode_request(req: Request) -> Result<Delivery, DeliveryError> {
    let (parts, bytes) = read_request(req).await?;
    Delivery::decode_owned(&parts.method, &parts.headers, bytes)
}

/// `req`'s parts and whole body, read under the [`BodyLimit`] in its
/// extensions; only a `POST` is read.
async fn read_request(req: Request) -> Result<(http::request::Parts, Vec<u8>), DeliveryError> {
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .copied()
        .unwrap_or_default()
        .0;
    let (parts, body) = req.into_parts();
    // Checked before reading so a wrong request costs nothing.
    if parts.method != Method::POST {
        return Err(DeliveryError::MethodNotAllowed(parts.method.to_string()));
    }
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(DeliveryError::BodyTooLarge { limit });
    }
    let capacity = declared.map_or(0, |n| usize::try_from(n).unwrap_or(limit));
    let bytes = read_limited(body, limit, capacity).await?;
    Ok((parts, bytes))
}

/// Reads at most `limit` bytes of `body` into one buffer of `capacity` (the
/// declared length), so the body is held once: not as chunks and then again
/// as their concatenation.
async fn read_limited(body: Body, limit: usize, capacity: usize) -> Result<Vec<u8>, DeliveryError> {
    let mut body = Limited::new(body, limit);
    let mut buf = Vec::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                DeliveryError::BodyTooLarge { limit }
            } else if is_shed(e.as_ref()) {
                DeliveryError::Shed
            } else {
                DeliveryError::BodyUnreadable(e.to_string())
            }
        })?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

/// Whether a body error is the admission's [`DeliveryError::Shed`] (wrapped
/// by the body types in between).
fn is_shed(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |e| e.source())
        .any(|e| e.downcast_ref::<DeliveryError>() == Some(&DeliveryError::Shed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;
    use axum::routing::post;
    use axum::{Extension, Router};
    use http::StatusCode;
    use sync_testkit::fixture;
    use tower::ServiceExt;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    async fn handler(delivery: Delivery) -> String {
        format!("{} {}", delivery.form, delivery.message_id)
    }

    fn app(limit: Option<usize>) -> Router {
        let router = Router::new().route("/", post(handler));
        match limit {
            Some(n) => router.layer(Extension(BodyLimit(n))),
            None => router,
        }
    }

    async fn body_text(
        response: axum::response::Response,
    ) -> Result<String, Box<dyn std::error::Error>> {
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8(bytes.to_vec())?)
    }

    #[tokio::test]
    async fn every_fixture_goes_through_the_extractor() -> TestResult {
        for (name, expected) in [
            (
                "cloudevent_binary.json",
                "cloudevent_binary 13566281437204712",
            ),
            (
                "cloudevent_structured.json",
                "cloudevent_structured 13566281437204713",
            ),
            ("push_plain.json", "pubsub_push 13566281437204711"),
            ("push_emulator.json", "pubsub_push 1"),
            ("push_unwrapped_emulator.json", "pubsub_unwrapped 1"),
            (
                "push_unwrapped_emulator_no_metadata.json",
                "pubsub_unwrapped_no_metadata sha256:",
            ),
            (
                "push_unwrapped_docs.json",
                "pubsub_unwrapped 13566281437204714",
            ),
        ] {
            let response = app(None).oneshot(fixture(name).to_request()?).await?;
            assert_eq!(response.status(), StatusCode::OK, "{name}");
            let text = body_text(response).await?;
            assert!(text.starts_with(expected), "{name}: {text}");
        }
        Ok(())
    }

    fn post_body(
        body: impl Into<Body>,
        content_length: Option<usize>,
    ) -> Result<Request, http::Error> {
        let mut builder = Request::builder()
            .method("POST")
            .uri("/?__GCP_CloudEventsMode=CUSTOM_PUBSUB_projects%2Fp%2Ftopics%2Ft")
            .header("content-type", "application/json");
        if let Some(n) = content_length {
            builder = builder.header("content-length", n.to_string());
        }
        builder.body(body.into())
    }

    #[tokio::test]
    async fn over_limit_body_is_413_with_or_without_content_length() -> TestResult {
        let body = format!(
            r#"{{"message":{{"messageId":"1","data":"{}"}}}}"#,
            "A".repeat(200)
        );
        // Declared length over the limit: refused before reading.
        let response = app(Some(100))
            .oneshot(post_body(body.clone(), Some(body.len()))?)
            .await?;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body_text(response).await?, "body_too_large");
        // No declared length (chunked): refused while reading.
        let stream = futures_stream(body.clone());
        let response = app(Some(100)).oneshot(post_body(stream, None)?).await?;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // Under the limit: fine.
        let response = app(Some(body.len()))
            .oneshot(post_body(body, None)?)
            .await?;
        assert_eq!(response.status(), StatusCode::OK);
        Ok(())
    }

    /// A body of unknown length, as a chunked request has.
    fn futures_stream(text: String) -> Body {
        let (first, second) = text.split_at(text.len() / 2);
        let chunks: Vec<Result<String, std::io::Error>> =
            vec![Ok(first.to_string()), Ok(second.to_string())];
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    #[tokio::test]
    async fn default_limit_admits_the_largest_legal_message() -> TestResult {
        // Pub/Sub's 10 MB data limit, base64-encoded in the push envelope.
        let body = sync_testkit::push(&vec![b'x'; 10_000_000], "big")
            .attribute("a", "b")
            .subscription("projects/p/subscriptions/s")
            .build()
            .body;
        let length = body.len();
        let response = app(None).oneshot(post_body(body, Some(length))?).await?;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_text(response).await?, "pubsub_push big");
        Ok(())
    }

    #[tokio::test]
    async fn rejections_answer_with_status_and_code_only() -> TestResult {
        let response = app(None).oneshot(post_body("{}", None)?).await?;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(body_text(response).await?, "missing_message");
        let response = app(None).oneshot(post_body("{secret", None)?).await?;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(body_text(response).await?, "invalid_envelope");
        let response = DeliveryError::MethodNotAllowed("PUT".into()).into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        Ok(())
    }

    #[tokio::test]
    async fn a_raw_request_is_read_whole_under_the_same_limit() -> TestResult {
        async fn raw(r: RawRequest) -> String {
            format!("{} {}", r.body.len(), r.headers.len())
        }
        let app = |limit| {
            Router::new()
                .route("/", post(raw))
                .layer(Extension(BodyLimit(limit)))
        };
        let body = vec![0xffu8; 300];
        let response = app(300)
            .oneshot(post_body(body.clone(), Some(300))?)
            .await?;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_text(response).await?, "300 2");
        let response = app(299).oneshot(post_body(body.clone(), None)?).await?;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let get = Request::builder()
            .method("GET")
            .uri("/")
            .body(Body::empty())?;
        let err = RawRequest::from_request(get, &()).await.expect_err("GET");
        assert_eq!(err.code(), "method_not_allowed");
        Ok(())
    }

    #[tokio::test]
    async fn extractor_checks_the_method_itself() -> TestResult {
        let request = Request::builder()
            .method("PUT")
            .uri("/")
            .body(Body::empty())?;
        let err = Delivery::from_request(request, &()).await.expect_err("PUT");
        assert_eq!(err.code(), "method_not_allowed");
        Ok(())
    }
}
