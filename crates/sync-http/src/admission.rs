//! Admission by bytes: a delivery waits for its share of the instance's
//! memory budget before its body is read, so an instance stays inside its
//! memory limit whatever Cloud Run hands it at once.
//!
//! The budget ([`MemoryBudget`]) is the instance's limit ([`MemoryLimit`]) less
//! what the process needs at rest; a request's share ([`RequestCost`]) is a
//! fixed part plus multiples of its body, measured per function, taken from
//! `Content-Length` (or chunk by chunk). A request that cannot have its share
//! within [`MemoryBudget::wait`] is shed with 429 and redelivered by Pub/Sub,
//! never dead-lettered for it; the share is released when the response is
//! ready or the request is dropped.

use crate::cgroup::MemoryLimit;
use crate::error::DeliveryError;
use crate::extract::BodyLimit;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The semaphore counts KiB (a `u32` of permits covers 4 TiB).
const UNIT: u64 = 1024;

/// How long a request may wait for its share before it is shed: a sixth of
/// the sync function's 60 s ack deadline, a third of the audit function's
/// 30 s, leaving the rest for the work.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// What one request costs, in bytes: `fixed`, plus `per_byte` for each body
/// byte up to `bulk_from`, plus `bulk_per_byte` for each byte beyond (a
/// function may do less with a body too large to be anything but refused).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestCost {
    /// Bytes every request holds whatever its body (buffers, parsed headers,
    /// the handler's own allocations).
    pub fixed: u64,
    /// Bytes held at the request's peak per body byte, up to `bulk_from`.
    pub per_byte: f64,
    /// The body size from which `bulk_per_byte` applies.
    pub bulk_from: u64,
    /// Bytes held per body byte beyond `bulk_from`.
    pub bulk_per_byte: f64,
}

impl RequestCost {
    /// `fixed` plus `per_byte` for every body byte.
    pub const fn flat(fixed: u64, per_byte: f64) -> Self {
        Self {
            fixed,
            per_byte,
            bulk_from: u64::MAX,
            bulk_per_byte: per_byte,
        }
    }

    /// The share of a request with a body of `body` bytes, in bytes.
    pub fn bytes(&self, body: u64) -> u64 {
        let head = body.min(self.bulk_from);
        let bulk = body - head;
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )] // bodies far below 2^52; the sum is positive
        let variable =
            (head as f64 * self.per_byte + bulk as f64 * self.bulk_per_byte).ceil() as u64;
        self.fixed.saturating_add(variable)
    }
}

/// An instance's budget for requests in flight. Cheap to clone; clones share
/// the budget.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    semaphore: Arc<Semaphore>,
    /// KiB in the budget.
    units: u32,
    limit: MemoryLimit,
    reserve: u64,
    cost: RequestCost,
    wait: Duration,
}

impl MemoryBudget {
    /// No budget: every request is admitted at once (no limit was found).
    pub fn unlimited() -> Self {
        Self { inner: None }
    }

    /// `limit` less `reserve` (what the process needs at rest) for requests
    /// costing `cost` each, shed after waiting `wait`. A limit at or below
    /// the reserve leaves one KiB: requests then run one at a time.
    pub fn new(limit: MemoryLimit, reserve: u64, cost: RequestCost, wait: Duration) -> Self {
        let budget = limit.bytes.saturating_sub(reserve);
        let max = u64::try_from(Semaphore::MAX_PERMITS)
            .unwrap_or(u64::MAX)
            .min(u64::from(u32::MAX));
        let units = u32::try_from((budget / UNIT).clamp(1, max)).unwrap_or(u32::MAX);
        Self {
            inner: Some(Arc::new(Inner {
                semaphore: Arc::new(Semaphore::new(units as usize)),
                units,
                limit,
                reserve,
                cost,
                wait,
            })),
        }
    }

    /// The budget for a function that needs `reserve` bytes at rest and whose
    /// requests cost `cost`: from `limit` when there is one (see
    /// [`MemoryLimit::resolve`]), else [`unlimited`](Self::unlimited). Logs
    /// what it chose.
    pub fn for_instance(limit: Option<MemoryLimit>, reserve: u64, cost: RequestCost) -> Self {
        Self::for_bodies_up_to(
            limit,
            reserve,
            cost,
            crate::delivery::LARGEST_LEGAL_BODY_BYTES,
        )
    }

    /// [`for_instance`](Self::for_instance) for a function whose bodies are
    /// at most `largest_body` bytes (its own body limit, below a Pub/Sub
    /// push's largest): what it logs at start is said of that body.
    pub fn for_bodies_up_to(
        limit: Option<MemoryLimit>,
        reserve: u64,
        cost: RequestCost,
        largest_body: u64,
    ) -> Self {
        let Some(limit) = limit else {
            tracing::warn!(
                "no memory limit found (no MEMORY_LIMIT_MIB, no cgroup limit): requests are admitted without a memory budget"
            );
            return Self::unlimited();
        };
        let budget = Self::new(limit, reserve, cost, DEFAULT_WAIT);
        budget.log_start(largest_body);
        budget
    }

    fn log_start(&self, largest_body: u64) {
        let Some(inner) = &self.inner else { return };
        let largest = inner.cost.bytes(largest_body);
        let budget = self.budget_bytes();
        let at_once = budget / largest.max(1);
        let fields = (
            mib(inner.limit.bytes),
            mib(inner.reserve),
            mib(budget),
            mib(largest),
        );
        if at_once == 0 {
            tracing::warn!(
                limit_mib = fields.0,
                limit_source = inner.limit.source.as_str(),
                reserve_mib = fields.1,
                budget_mib = fields.2,
                largest_delivery_mib = fields.3,
                "memory budget is smaller than the largest legal delivery needs: such a delivery runs alone and may still exceed the limit"
            );
        } else {
            tracing::info!(
                limit_mib = fields.0,
                limit_source = inner.limit.source.as_str(),
                reserve_mib = fields.1,
                budget_mib = fields.2,
                largest_delivery_mib = fields.3,
                largest_deliveries_at_once = at_once,
                "requests admitted by memory budget"
            );
        }
    }

    /// Whether requests are admitted against a budget at all.
    pub fn is_limited(&self) -> bool {
        self.inner.is_some()
    }

    /// Bytes of the budget (0 when unlimited).
    pub fn budget_bytes(&self) -> u64 {
        self.inner.as_ref().map_or(0, |i| u64::from(i.units) * UNIT)
    }

    /// Bytes of the budget not held by a request now.
    pub fn available_bytes(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.semaphore.available_permits() as u64 * UNIT)
    }

    /// How long a request waits for its share before it is shed.
    pub fn wait(&self) -> Duration {
        self.inner.as_ref().map_or(Duration::ZERO, |i| i.wait)
    }

    /// Takes the share of a body of `body` bytes (capped at the whole
    /// budget), waiting until `deadline`.
    ///
    /// # Errors
    /// [`DeliveryError::Shed`] when the deadline passes first.
    async fn take(
        inner: &Arc<Inner>,
        units: u32,
        deadline: Instant,
    ) -> Result<Held, DeliveryError> {
        let wait = deadline.saturating_duration_since(Instant::now());
        let acquire = Arc::clone(&inner.semaphore).acquire_many_owned(units.min(inner.units));
        match tokio::time::timeout(wait, acquire).await {
            Ok(Ok(permit)) => Ok(Held(Some(permit))),
            // The semaphore is never closed; a closed one admits nobody.
            Ok(Err(_)) | Err(_) => Err(DeliveryError::Shed),
        }
    }
}

impl Inner {
    /// KiB for `bytes`, rounded up.
    fn units_for(bytes: u64) -> u32 {
        u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX)
    }
}

#[allow(clippy::cast_precision_loss)] // for logs
fn mib(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0
}

/// Permits a request holds; released on drop.
#[derive(Debug, Default)]
struct Held(Option<OwnedSemaphorePermit>);

impl Held {
    fn units(&self) -> u32 {
        self.0
            .as_ref()
            .map_or(0, |p| u32::try_from(p.num_permits()).unwrap_or(u32::MAX))
    }

    fn add(&mut self, more: Held) {
        match (&mut self.0, more.0) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
    }
}

/// The `Content-Length` a request declares, if any.
fn declared_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The middleware (`axum::middleware::from_fn_with_state(budget, admit)`):
/// waits for the request's share, sheds it with 429 after
/// [`MemoryBudget::wait`], and holds the share until the response is ready.
pub async fn admit(State(budget): State<MemoryBudget>, request: Request, next: Next) -> Response {
    let Some(inner) = budget.inner.clone() else {
        return next.run(request).await;
    };
    let arrived = Instant::now();
    let deadline = arrived + inner.wait;
    let declared = declared_length(&request);
    let body_limit = request
        .extensions()
        .get::<BodyLimit>()
        .copied()
        .unwrap_or_default()
        .0 as u64;
    if declared.is_some_and(|n| n > body_limit) {
        // Refused unread by the extractor: it costs nothing.
        return next.run(request).await;
    }
    let charged = inner.cost.bytes(declared.unwrap_or(0));
    let held = match MemoryBudget::take(&inner, Inner::units_for(charged), deadline).await {
        Ok(held) => Arc::new(Mutex::new(held)),
        Err(e) => {
            log_shed(&inner, declared.unwrap_or(0), charged, arrived);
            discard_body(request.into_body(), body_limit).await;
            return e.into_response();
        }
    };
    let request = if declared.is_some() {
        request
    } else {
        let (parts, body) = request.into_parts();
        let metered = MeteredBody {
            inner: body,
            budget: Arc::clone(&inner),
            held: Arc::clone(&held),
            read: 0,
            arrived,
            deadline,
            pending: None,
        };
        Request::from_parts(parts, Body::new(metered))
    };
    let response = next.run(request).await;
    drop(held);
    response
}

/// How long a shed request's body is read (and dropped) before it is answered.
const DISCARD_WAIT: Duration = Duration::from_secs(5);

/// Reads a shed request's body, chunk by chunk, keeping nothing, for at most
/// [`DISCARD_WAIT`] and `limit` bytes. Answering before the body is read
/// would close the connection under a sender still writing it, which then
/// sees a broken connection rather than the 429.
async fn discard_body(body: Body, limit: u64) {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut read: u64 = 0;
    let _ = tokio::time::timeout(DISCARD_WAIT, async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                read = read.saturating_add(data.len() as u64);
            }
            if read > limit {
                break;
            }
        }
    })
    .await;
}

fn log_shed(inner: &Inner, body: u64, charged: u64, arrived: Instant) {
    tracing::warn!(
        outcome = "shed",
        error_code = DeliveryError::Shed.code(),
        body_bytes = body,
        share_bytes = charged,
        budget_bytes = u64::from(inner.units) * UNIT,
        available_bytes = inner.semaphore.available_permits() as u64 * UNIT,
        waited_ms = u64::try_from(arrived.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request shed: its share of the memory budget did not free up in time; Pub/Sub will redeliver it"
    );
}

type Acquire = Pin<Box<dyn Future<Output = Result<Held, DeliveryError>> + Send>>;

/// A body of unknown length that takes its share of each chunk as it is read.
struct MeteredBody {
    inner: Body,
    budget: Arc<Inner>,
    held: Arc<Mutex<Held>>,
    /// Bytes read so far.
    read: u64,
    arrived: Instant,
    deadline: Instant,
    /// A chunk read whose share is being waited for.
    pending: Option<(Frame<Bytes>, Acquire)>,
}

impl MeteredBody {
    /// KiB still to take for the bytes read so far (capped at the budget).
    fn units_owed(&self) -> u32 {
        let held = self.lock().units();
        let owed = Inner::units_for(self.budget.cost.bytes(self.read));
        owed.min(self.budget.units).saturating_sub(held)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl HttpBody for MeteredBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            if let Some((_, acquire)) = &mut this.pending {
                return match acquire.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Ok(more)) => {
                        this.lock().add(more);
                        let (frame, _) = this.pending.take().expect("pending was just polled");
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Poll::Ready(Err(e)) => {
                        this.pending = None;
                        log_shed(
                            &this.budget,
                            this.read,
                            this.budget.cost.bytes(this.read),
                            this.arrived,
                        );
                        Poll::Ready(Some(Err(axum::Error::new(e))))
                    }
                };
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => frame,
                other => return other,
            };
            if let Some(data) = frame.data_ref() {
                this.read = this.read.saturating_add(data.len() as u64);
            }
            let owed = this.units_owed();
            if owed == 0 {
                return Poll::Ready(Some(Ok(frame)));
            }
            let semaphore = Arc::clone(&this.budget.semaphore);
            if let Ok(more) = Arc::clone(&semaphore).try_acquire_many_owned(owed) {
                this.lock().add(Held(Some(more)));
                return Poll::Ready(Some(Ok(frame)));
            }
            let (budget, deadline) = (Arc::clone(&this.budget), this.deadline);
            this.pending = Some((
                frame,
                Box::pin(async move { MemoryBudget::take(&budget, owed, deadline).await }),
            ));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::LimitSource;
    use axum::routing::post;
    use axum::{Extension, Router};
    use http::StatusCode;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    const KIB: u64 = 1024;

    fn budget(kib: u64, wait: Duration) -> MemoryBudget {
        MemoryBudget::new(
            MemoryLimit {
                bytes: kib * KIB,
                source: LimitSource::Setting,
            },
            0,
            RequestCost::flat(0, 1.0),
            wait,
        )
    }

    /// A router whose handler reads the body, then waits for `release` (when
    /// given) before answering 204.
    fn app(budget: &MemoryBudget, release: Option<Arc<tokio::sync::Notify>>) -> Router {
        let handler = move |request: Request| {
            let release = release.clone();
            async move {
                if request.into_body().collect().await.is_err() {
                    return DeliveryError::Shed.into_response();
                }
                if let Some(r) = release {
                    r.notified().await;
                }
                StatusCode::NO_CONTENT.into_response()
            }
        };
        Router::new()
            .route(
                "/",
                post(handler).layer(axum::middleware::from_fn_with_state(budget.clone(), admit)),
            )
            .layer(Extension(BodyLimit(1024 * 1024)))
    }

    fn post_of(len: usize) -> Request {
        Request::builder()
            .method("POST")
            .uri("/")
            .header("content-length", len.to_string())
            .body(Body::from(vec![b'x'; len]))
            .expect("a request")
    }

    /// A chunked body: `chunks` chunks of `size` bytes, each sent when the
    /// test pushes it.
    fn chunked() -> (tokio::sync::mpsc::Sender<Bytes>, Request) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
        });
        let request = Request::builder()
            .method("POST")
            .uri("/")
            .body(Body::from_stream(stream))
            .expect("a request");
        (tx, request)
    }

    /// Polls until `f` holds (a few seconds at most): the other task runs.
    async fn eventually(what: &str, f: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn a_share_is_the_fixed_part_plus_a_multiple_of_the_body() {
        let cost = RequestCost::flat(64 * KIB, 1.5);
        assert_eq!(cost.bytes(0), 64 * KIB);
        assert_eq!(cost.bytes(1000), 64 * KIB + 1500);
        let tiered = RequestCost {
            fixed: 0,
            per_byte: 10.0,
            bulk_from: 1000,
            bulk_per_byte: 2.0,
        };
        assert_eq!(tiered.bytes(500), 5000);
        assert_eq!(tiered.bytes(3000), 10_000 + 4000);
        let b = MemoryBudget::new(
            MemoryLimit {
                bytes: 256 * 1024 * KIB,
                source: LimitSource::CgroupV2,
            },
            56 * 1024 * KIB,
            cost,
            DEFAULT_WAIT,
        );
        assert_eq!(b.budget_bytes(), 200 * 1024 * KIB);
        assert!(b.is_limited());
        assert!(!MemoryBudget::unlimited().is_limited());
    }

    #[tokio::test]
    async fn a_request_waits_for_its_share_and_gets_it_when_another_finishes() {
        let b = budget(100, Duration::from_secs(30));
        let release = Arc::new(tokio::sync::Notify::new());
        let first = tokio::spawn(app(&b, Some(release.clone())).oneshot(post_of(60 * 1024)));
        eventually("the first to hold its share", || {
            b.available_bytes() == 40 * KIB
        })
        .await;
        let second = tokio::spawn(app(&b, None).oneshot(post_of(60 * 1024)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "the second waits");
        release.notify_one();
        let first = first.await.expect("task").expect("infallible");
        assert_eq!(first.status(), StatusCode::NO_CONTENT);
        let second = second.await.expect("task").expect("infallible");
        assert_eq!(second.status(), StatusCode::NO_CONTENT);
        assert_eq!(b.available_bytes(), 100 * KIB, "both released");
    }

    #[tokio::test]
    async fn a_request_is_shed_with_429_once_the_wait_is_over() {
        let b = budget(100, Duration::from_millis(100));
        let release = Arc::new(tokio::sync::Notify::new());
        let first = tokio::spawn(app(&b, Some(release.clone())).oneshot(post_of(60 * 1024)));
        eventually("the first to hold its share", || {
            b.available_bytes() == 40 * KIB
        })
        .await;
        let second = app(&b, None)
            .oneshot(post_of(60 * 1024))
            .await
            .expect("infallible");
        assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
        let text = second.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&text[..], DeliveryError::Shed.code().as_bytes());
        // A small one still fits meanwhile.
        let small = app(&b, None)
            .oneshot(post_of(10 * 1024))
            .await
            .expect("infallible");
        assert_eq!(small.status(), StatusCode::NO_CONTENT);
        release.notify_one();
        first.await.expect("task").expect("infallible");
        assert_eq!(b.available_bytes(), 100 * KIB);
    }

    #[tokio::test]
    async fn a_request_larger_than_the_budget_runs_alone() {
        let b = budget(100, Duration::from_secs(30));
        let release = Arc::new(tokio::sync::Notify::new());
        let big = tokio::spawn(app(&b, Some(release.clone())).oneshot(post_of(300 * 1024)));
        eventually("the big one to hold everything", || {
            b.available_bytes() == 0
        })
        .await;
        let small = tokio::spawn(app(&b, None).oneshot(post_of(1024)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!small.is_finished(), "nothing runs beside it");
        release.notify_one();
        let big = big.await.expect("task").expect("infallible");
        assert_eq!(big.status(), StatusCode::NO_CONTENT);
        let small = small.await.expect("task").expect("infallible");
        assert_eq!(small.status(), StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn a_dropped_request_releases_its_share() {
        let b = budget(100, Duration::from_secs(30));
        let never = Arc::new(tokio::sync::Notify::new());
        let stuck = tokio::spawn(app(&b, Some(never)).oneshot(post_of(60 * 1024)));
        eventually("it to hold its share", || b.available_bytes() == 40 * KIB).await;
        // The client goes away: hyper drops the request's future.
        stuck.abort();
        let _ = stuck.await;
        assert_eq!(b.available_bytes(), 100 * KIB);
        // And one dropped while still waiting takes nothing with it.
        let release = Arc::new(tokio::sync::Notify::new());
        let holder = tokio::spawn(app(&b, Some(release.clone())).oneshot(post_of(90 * 1024)));
        eventually("the holder", || b.available_bytes() == 10 * KIB).await;
        let waiter = tokio::spawn(app(&b, None).oneshot(post_of(50 * 1024)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        waiter.abort();
        let _ = waiter.await;
        release.notify_one();
        holder.await.expect("task").expect("infallible");
        assert_eq!(b.available_bytes(), 100 * KIB);
    }

    #[tokio::test]
    async fn a_chunked_body_takes_its_share_as_it_is_read() {
        let b = budget(100, Duration::from_secs(30));
        let release = Arc::new(tokio::sync::Notify::new());
        let (tx, request) = chunked();
        let task = tokio::spawn(app(&b, Some(release.clone())).oneshot(request));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(b.available_bytes(), 100 * KIB, "nothing read, nothing held");
        tx.send(Bytes::from(vec![b'x'; 30 * 1024]))
            .await
            .expect("send");
        eventually("the first chunk's share", || {
            b.available_bytes() == 70 * KIB
        })
        .await;
        tx.send(Bytes::from(vec![b'x'; 20 * 1024]))
            .await
            .expect("send");
        eventually("the second chunk's share", || {
            b.available_bytes() == 50 * KIB
        })
        .await;
        drop(tx);
        // Held until the response, not only until the body is read.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(b.available_bytes(), 50 * KIB);
        release.notify_one();
        let response = task.await.expect("task").expect("infallible");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(b.available_bytes(), 100 * KIB);
    }

    #[tokio::test]
    async fn a_chunked_body_that_cannot_get_its_share_is_shed() {
        let b = budget(100, Duration::from_millis(200));
        let release = Arc::new(tokio::sync::Notify::new());
        let holder = tokio::spawn(app(&b, Some(release.clone())).oneshot(post_of(80 * 1024)));
        eventually("the holder", || b.available_bytes() == 20 * KIB).await;
        let (tx, request) = chunked();
        let chunked = tokio::spawn(app(&b, None).oneshot(request));
        tx.send(Bytes::from(vec![b'x'; 10 * 1024]))
            .await
            .expect("send");
        tx.send(Bytes::from(vec![b'x'; 30 * 1024]))
            .await
            .expect("send");
        let response = chunked.await.expect("task").expect("infallible");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(b.available_bytes(), 20 * KIB, "what it had is released");
        release.notify_one();
        holder.await.expect("task").expect("infallible");
        assert_eq!(b.available_bytes(), 100 * KIB);
    }

    #[tokio::test]
    async fn an_unlimited_budget_admits_everything_at_once() {
        let b = MemoryBudget::unlimited();
        let response = app(&b, None)
            .oneshot(post_of(512 * 1024))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
}
