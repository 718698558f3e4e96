//! HTTP side of the functions: delivery decoding and the runtime glue the
//! sync, audit and capture functions share.
//!
//! - [`Delivery`]: one type for a Pub/Sub message however it arrived (a
//!   CloudEvent in binary or structured mode, a wrapped push, an unwrapped
//!   push: [`unwrapped`]), with an axum extractor that enforces the body limit
//!   ([`BodyLimit`]) before reading and typed errors ([`DeliveryError`]: not a
//!   delivery at all, 4xx; [`InvalidBase64`]: a message still to dead-letter);
//! - [`TraceContext`]: the trace a message or request carries, and the child
//!   span a function passes on; [`telemetry`]: Cloud Logging JSON or text logs;
//! - [`server`] (serve, graceful shutdown, the health paths and [`Gate`]),
//!   [`admission`] by bytes against the instance's memory ([`MemoryBudget`],
//!   [`cgroup`]), [`allocator`] set-up, the start-up's [`warmup`] loop, and
//!   [`config`]: [`RuntimeConfig`].
//!
//! What it leaves out: what a delivery means (`sync-core` and the functions)
//! and publishing (`sync-pubsub`). Push authentication is Cloud Run's IAM
//! check (the forwarded token has its signature removed).

pub mod admission;
pub mod allocator;
pub mod cgroup;
pub mod config;
mod decode;
pub mod delivery;
pub mod error;
pub mod extract;
pub mod server;
pub mod telemetry;
pub mod trace;
pub mod unwrapped;
pub mod warmup;

pub use admission::{MemoryBudget, RequestCost};
pub use cgroup::MemoryLimit;
pub use config::RuntimeConfig;
pub use delivery::{
    CloudEventMeta, Delivery, DeliveryForm, DEFAULT_MAX_BODY_BYTES, LARGEST_LEGAL_BODY_BYTES,
};
pub use error::{DeliveryError, InvalidBase64};
pub use extract::{BodyLimit, RawRequest};
pub use server::{healthz, livez, push_router, serve, shutdown_signal, Gate, ServeError, Server};
pub use telemetry::LogFormat;
pub use trace::{trace_resource_name, TraceContext};
