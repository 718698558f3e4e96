//! The environment variables of datastore-sync, named once, and how settings
//! are read.
//!
//! Every variable a binary reads is a constant here; the reference for
//! operators is `docs/configuration.md`, and a test keeps the two equal.
//! Each part of a binary's settings is a serde struct whose field names are
//! the variables' (the HTTP runtime's in `sync-http`, the store's in
//! `sync-store`, Pub/Sub's in `sync-pubsub`, each function's own in its
//! crate); [`Reader`] deserializes them with `figment` from a lookup
//! function, never from the process environment itself, so tests pass a map.
//! A reader notes every problem of every part, each naming the variable and
//! the form expected, and the binary reports them together before it binds
//! its port. Files that settings name (the merge policy, the schema history)
//! are read here too; `sync-core` only parses their contents.
//!
//! `syncctl` reads its variables through clap (`#[arg(env = ...)]`) with the
//! same constants.

mod reader;

pub use reader::{parsed, read_pairs, ConfigErrors, Problems, Reader, Var};

// Shared by the functions and syncctl.

/// Project of the Datastore database and the topics.
pub const GOOGLE_CLOUD_PROJECT: &str = "GOOGLE_CLOUD_PROJECT";
/// `host:port` of the Datastore emulator; unset in production.
pub const DATASTORE_EMULATOR_HOST: &str = "DATASTORE_EMULATOR_HOST";
/// `host:port` of the Pub/Sub emulator; unset in production.
pub const PUBSUB_EMULATOR_HOST: &str = "PUBSUB_EMULATOR_HOST";
/// Path of the schema history file (.json or .toml), which both functions
/// read; unset: version 1 only.
pub const SCHEMA_HISTORY_FILE: &str = "SCHEMA_HISTORY_FILE";

// The HTTP runtime of both functions (`sync_http::RuntimeConfig`).

/// Port to listen on (Cloud Run sets it).
pub const PORT: &str = "PORT";
/// Largest accepted request body, in bytes.
pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
/// `json` (Cloud Logging, the default) or `text` (readable, for local runs).
pub const LOG_FORMAT: &str = "LOG_FORMAT";
/// The instance's memory limit in MiB, overriding the one read from the
/// process's cgroup (the deploy scripts set it to the service's `--memory`).
pub const MEMORY_LIMIT_MIB: &str = "MEMORY_LIMIT_MIB";
/// tracing's log filter directives (default `info`).
pub const RUST_LOG: &str = "RUST_LOG";
/// glibc's tunables, read when a process starts (`sync_http::allocator`).
pub const GLIBC_TUNABLES: &str = "GLIBC_TUNABLES";
/// Set by a function in the environment of itself re-executed with
/// [`GLIBC_TUNABLES`], so that it does not re-execute again; not a setting.
pub const SYNC_ALLOCATOR_REEXECUTED: &str = "SYNC_ALLOCATOR_REEXECUTED";

// Datastore (`sync_store::StoreConfig`).

/// Default Datastore kind (events may name their own `kind`).
pub const SYNC_KIND: &str = "SYNC_KIND";
/// Datastore namespace (default: the default namespace).
pub const DATASTORE_NAMESPACE: &str = "DATASTORE_NAMESPACE";
/// How long tombstones are kept before the TTL policy removes them, in days.
pub const TOMBSTONE_RETENTION_DAYS: &str = "TOMBSTONE_RETENTION_DAYS";
/// Time budget for retrying transient Datastore failures inside one request, in seconds.
pub const RETRY_BUDGET_SECS: &str = "RETRY_BUDGET_SECS";

// Pub/Sub (`sync_pubsub::PubSubConfig`).

/// Per-publish timeout in milliseconds (default 10000).
pub const PUBSUB_PUBLISH_TIMEOUT_MS: &str = "PUBSUB_PUBLISH_TIMEOUT_MS";
/// Publisher batching delay in milliseconds (default 2).
pub const PUBSUB_BATCH_DELAY_MS: &str = "PUBSUB_BATCH_DELAY_MS";
/// Distinct ordering keys one topic's publisher serves before it is replaced
/// (default 250).
pub const PUBSUB_MAX_ORDERING_KEYS: &str = "PUBSUB_MAX_ORDERING_KEYS";

// The sync function's own.

/// Prefix of the announcement topics: `<prefix><operation>`.
pub const EXTERNAL_TOPIC_PREFIX: &str = "EXTERNAL_TOPIC_PREFIX";
/// Dead-letter topic: a topic id in the project or `projects/P/topics/T`.
pub const DEAD_LETTER_TOPIC: &str = "DEAD_LETTER_TOPIC";
/// Largest accepted clock skew of event timestamps, in seconds.
pub const MAX_CLOCK_SKEW_SECS: &str = "MAX_CLOCK_SKEW_SECS";
/// Path of a merge policy file (.json or .toml).
pub const MERGE_POLICY_FILE: &str = "MERGE_POLICY_FILE";
/// `true`: each announcement carries its entity id as ordering key (default
/// `false`; see `sync_pubsub::messages::announcement` for the trade).
pub const ANNOUNCE_ORDERING_KEYS: &str = "ANNOUNCE_ORDERING_KEYS";
/// Seconds the first calls to Datastore and Pub/Sub may take before the
/// start-up is logged as late (it keeps retrying; `/healthz` stays 503).
pub const READY_TIMEOUT_SECS: &str = "READY_TIMEOUT_SECS";
/// `true` serves `GET /debug/counters` (RPCs and events counted so far).
pub const SYNC_DEBUG_ENDPOINTS: &str = "SYNC_DEBUG_ENDPOINTS";

// The audit function's own.

/// Comma-separated field names whose values are replaced in `data_snapshot`.
pub const AUDIT_REDACT_FIELDS: &str = "AUDIT_REDACT_FIELDS";
/// Largest raw payload copied into a malformed-message entry, in bytes.
pub const AUDIT_MAX_RAW_BYTES: &str = "AUDIT_MAX_RAW_BYTES";
/// `processing_metadata.function_name` (the recipe's is `audit_logger`).
pub const AUDIT_FUNCTION_NAME: &str = "AUDIT_FUNCTION_NAME";

// The capture function's own (besides `SYNC_KIND`, `DEAD_LETTER_TOPIC` and
// `READY_TIMEOUT_SECS`, which it reads as the sync function does).

/// The topic captured changes are published to: a topic id in the project
/// or `projects/P/topics/T` (default: the recipe's events topic).
pub const EVENTS_TOPIC: &str = "EVENTS_TOPIC";
/// Comma-separated kinds whose changes are captured; unset: every kind but
/// the sync function's own.
pub const CAPTURE_KINDS: &str = "CAPTURE_KINDS";
