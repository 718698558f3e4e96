//! HTTP side of the sync and audit functions: delivery decoding and the
//! runtime glue both share.
//!
//! This crate owns:
//! - [`Delivery`]: one type for a Pub/Sub message however it arrived — a
//!   CloudEvent in binary mode (Eventarc), a CloudEvent in structured mode, or
//!   a plain Pub/Sub push (Google's or the emulator's, snake_case duplicates
//!   included), or an unwrapped push (`noWrapper`, with or without
//!   write-metadata headers: [`unwrapped`]) — with an axum extractor that enforces the body limit
//!   ([`BodyLimit`], default 16 MiB) before buffering, and typed errors
//!   ([`DeliveryError`] for "not a delivery at all", logged once by the
//!   extractor and answered 4xx;
//!   [`InvalidBase64`] kept inside the `Delivery` so the message can still be
//!   dead-lettered);
//! - trace context from the message attribute `googclient_traceparent`, else
//!   `traceparent` / `X-Cloud-Trace-Context` ([`TraceContext`]), and the child
//!   span a function passes on;
//! - [`telemetry`]: Cloud Logging JSON or text logs, with trace correlation;
//! - [`server`]: `serve` on `0.0.0.0:PORT`, graceful shutdown on SIGTERM, the health paths
//!   (`livez`, `healthz`) and [`Gate`], which answers 503 until the function's
//!   backends have answered;
//! - [`allocator`]: glibc's allocator set to give freed memory back at once
//!   (the binaries re-execute themselves with the tunable when it is missing);
//! - [`admission`]: admission by bytes ([`MemoryBudget`]): a delivery waits
//!   for its share of the instance's memory budget before its body is read,
//!   and is shed with 429 when it cannot have it in time; [`cgroup`]: the
//!   instance's memory limit the budget comes from;
//! - [`config`]: what both functions read: [`RuntimeConfig`] (`PORT`,
//!   `MAX_BODY_BYTES`, `LOG_FORMAT`, `MEMORY_LIMIT_MIB`) and the schema
//!   history `SCHEMA_HISTORY_FILE` names, read through a
//!   `sync_config::Reader` with the rest of the function's settings.
//!
//! What it leaves out: what a delivery *means* (parsing the change event,
//! merging, deciding ack or dead-letter) is `sync-core`'s and the functions';
//! publishing (dead letters included) is `sync-pubsub`'s. Push authentication
//! is left to Cloud Run's IAM check (the forwarded token has its signature
//! removed, so it cannot be verified again here).

pub mod admission;
pub mod allocator;
pub mod cgroup;
pub mod config;
pub mod delivery;
pub mod error;
pub mod extract;
pub mod server;
pub mod telemetry;
pub mod trace;
pub mod unwrapped;

pub use admission::{MemoryBudget, RequestCost};
pub use cgroup::MemoryLimit;
pub use config::RuntimeConfig;
pub use delivery::{
    CloudEventMeta, Delivery, DeliveryForm, DEFAULT_MAX_BODY_BYTES, LARGEST_LEGAL_BODY_BYTES,
};
pub use error::{DeliveryError, InvalidBase64};
pub use extract::BodyLimit;
pub use server::{healthz, livez, push_router, serve, shutdown_signal, Gate, ServeError, Server};
pub use telemetry::LogFormat;
pub use trace::{trace_resource_name, TraceContext};
