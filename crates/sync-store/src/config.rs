//! What the store needs to know: project, namespace, kinds, retry and timeouts;
//! and the part of a binary's settings that says so ([`StoreConfig::read`]).

use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use sync_config::{Reader, Var, DATASTORE_EMULATOR_HOST, DATASTORE_NAMESPACE, SYNC_KIND};
use sync_config::{RETRY_BUDGET_SECS, TOMBSTONE_RETENTION_DAYS};
use sync_core::{MergePolicy, ValidationLimits};
use thiserror::Error;

/// Production gRPC endpoint of Datastore (and Firestore in Datastore mode).
pub const PRODUCTION_ENDPOINT: &str = "https://datastore.googleapis.com";

/// Configuration of a [`crate::DatastoreStore`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Google Cloud project id; sent in every request.
    pub project_id: String,
    /// Database id; empty for the default database.
    pub database_id: String,
    /// Namespace; `None` or empty for the default namespace.
    pub namespace: Option<String>,
    /// `host:port` of an emulator: plain HTTP/2, no credentials.
    pub emulator_host: Option<String>,
    /// Production endpoint override (a regional endpoint, say); `None` for
    /// [`PRODUCTION_ENDPOINT`]. Ignored when `emulator_host` is set.
    pub endpoint: Option<String>,
    /// Kind of entities whose events name no kind (the recipe's `SyncEntity`).
    pub default_kind: String,
    /// Kind of delete tombstones (children of the deleted entity's key).
    pub tombstone_kind: String,
    /// Kind of conflict records (children of the entity's key).
    pub conflict_kind: String,
    /// How long a tombstone is kept: its `expire_at` is now + this, for a
    /// Datastore TTL policy on `SyncTombstone.expire_at`.
    pub tombstone_retention: Duration,
    /// Transaction attempts on contention (`ABORTED`) before giving up.
    pub max_attempts: u32,
    /// First backoff between attempts (doubled per attempt, fully jittered).
    pub backoff_base: Duration,
    /// Largest backoff between attempts.
    pub backoff_max: Duration,
    /// Timeout of every single call to Datastore.
    pub call_timeout: Duration,
    /// Total time one operation may spend retrying transient failures and
    /// contention, to stay well below the push subscription's ack deadline.
    pub retry_budget: Duration,
    /// Serialize this process's transactions on the same key (striped
    /// in-process locks), so only writers in different processes contend in
    /// Datastore. Under pessimistic locking (Firestore in Datastore mode and its
    /// emulator) many transactions of one process on one hot key otherwise
    /// block each other's commits until they all abort, over and over.
    pub serialize_keys_locally: bool,
    /// Merge policy.
    pub policy: Arc<MergePolicy>,
    /// Size limits (the entity size limit is checked before each commit).
    pub limits: ValidationLimits,
}

impl StoreConfig {
    /// Defaults for `project_id`: default database and namespace, the recipe's
    /// kinds, 7-day tombstones, 8 attempts, 20 ms–1 s backoff, 10 s call timeout,
    /// 20 s retry budget, per-key serialization on, the default policy and limits, production endpoint.
    pub fn new(project_id: impl Into<String>) -> Self {
        Self {
            project_id: project_id.into(),
            database_id: String::new(),
            namespace: None,
            emulator_host: None,
            endpoint: None,
            default_kind: sync_core::ingest::limits::DEFAULT_KIND.into(),
            tombstone_kind: sync_core::ingest::limits::DEFAULT_TOMBSTONE_KIND.into(),
            conflict_kind: sync_core::ingest::limits::DEFAULT_CONFLICT_KIND.into(),
            tombstone_retention: Duration::from_secs(7 * 24 * 3600),
            max_attempts: 8,
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_secs(1),
            call_timeout: Duration::from_secs(10),
            retry_budget: Duration::from_secs(20),
            serialize_keys_locally: true,
            policy: Arc::new(MergePolicy::default()),
            limits: ValidationLimits::default(),
        }
    }

    /// The variables [`read`](Self::read) reads, and the form each takes.
    pub const VARS: &[Var] = &[
        Var::new(
            DATASTORE_EMULATOR_HOST,
            "`host:port` of the Datastore emulator",
        ),
        Var::new(DATASTORE_NAMESPACE, "a Datastore namespace"),
        Var::new(SYNC_KIND, "a Datastore kind"),
        Var::new(TOMBSTONE_RETENTION_DAYS, "a whole number of days >= 1"),
        Var::new(RETRY_BUDGET_SECS, "a whole number of seconds"),
    ];

    /// The store's part of a binary's settings, for `project_id`: the
    /// emulator, the namespace, the default kind (`SyncEntity`), the
    /// tombstones' retention (7 days) and the retry budget (20 s); the rest
    /// as in [`new`](Self::new), with the limits' key layout in this
    /// namespace and kind. Each unusable value is noted and its default kept.
    pub fn read(project_id: impl Into<String>, reader: &mut Reader) -> Self {
        let vars: StoreSettings = reader.read(Self::VARS);
        let mut config = Self::new(project_id);
        config.emulator_host = vars.datastore_emulator_host;
        if let Some(kind) = vars.sync_kind {
            match sync_core::value::check_name(&kind) {
                Ok(()) => config.default_kind = kind,
                Err(e) => reader.push(format!("{SYNC_KIND}={kind:?} is invalid: {e}")),
            }
        }
        if let Some(ns) = vars.datastore_namespace {
            match sync_core::ingest::limits::check_namespace(&ns) {
                Ok(()) => config.namespace = Some(ns),
                Err(e) => reader.push(format!("{DATASTORE_NAMESPACE}={ns:?} is invalid: {e}")),
            }
        }
        if let Some(days) = vars.tombstone_retention_days {
            config.tombstone_retention = Duration::from_secs(days.get() * 86_400);
        }
        if let Some(secs) = vars.retry_budget_secs {
            config.retry_budget = Duration::from_secs(secs);
        }
        config.limits.keys = config.key_layout();
        config
    }

    /// The namespace and kinds of the keys this store writes, for the key
    /// size limit (the sync function validates events with the same).
    pub fn key_layout(&self) -> sync_core::ingest::limits::KeyLayout {
        sync_core::ingest::limits::KeyLayout {
            namespace: self.namespace_id().to_string(),
            default_kind: self.default_kind.clone(),
            tombstone_kind: self.tombstone_kind.clone(),
            conflict_kind: self.conflict_kind.clone(),
        }
    }

    /// The namespace as Datastore wants it ("" for the default).
    pub(crate) fn namespace_id(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }

    /// The URL the client connects to.
    pub(crate) fn url(&self) -> String {
        match (&self.emulator_host, &self.endpoint) {
            (Some(host), _) => {
                let host = host.trim();
                if host.starts_with("http://") || host.starts_with("https://") {
                    host.to_string()
                } else {
                    format!("http://{host}")
                }
            }
            (None, Some(endpoint)) => endpoint.clone(),
            (None, None) => PRODUCTION_ENDPOINT.to_string(),
        }
    }

    /// Checks the configuration before any connection is made.
    ///
    /// # Errors
    /// [`ConnectError::InvalidConfig`] naming the setting and what is expected.
    pub fn validate(&self) -> Result<(), ConnectError> {
        let invalid = |what: String| Err(ConnectError::InvalidConfig(what));
        if self.project_id.trim().is_empty() {
            return invalid("project_id must not be empty".into());
        }
        for (name, kind) in [
            ("default_kind", &self.default_kind),
            ("tombstone_kind", &self.tombstone_kind),
            ("conflict_kind", &self.conflict_kind),
        ] {
            if let Err(reason) = sync_core::value::check_name(kind) {
                return invalid(format!("{name} `{kind}` {reason}"));
            }
        }
        if self.tombstone_kind == self.conflict_kind
            || self.tombstone_kind == self.default_kind
            || self.conflict_kind == self.default_kind
        {
            return invalid(
                "default_kind, tombstone_kind and conflict_kind must be different".into(),
            );
        }
        if let Some(ns) = self.namespace.as_deref().filter(|n| !n.is_empty()) {
            if let Err(reason) = sync_core::ingest::limits::check_namespace(ns) {
                return invalid(format!("namespace `{ns}` {reason}"));
            }
        }
        if self.max_attempts == 0 {
            return invalid("max_attempts must be at least 1".into());
        }
        if self.call_timeout.is_zero() {
            return invalid("call_timeout must be positive".into());
        }
        if self.backoff_base > self.backoff_max {
            return invalid("backoff_base must not exceed backoff_max".into());
        }
        if self.tombstone_retention.is_zero() {
            return invalid("tombstone_retention must be positive".into());
        }
        Ok(())
    }
}

/// The store's variables, one field each (see [`StoreConfig::VARS`]).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "SCREAMING_SNAKE_CASE")]
struct StoreSettings {
    datastore_emulator_host: Option<String>,
    datastore_namespace: Option<String>,
    sync_kind: Option<String>,
    tombstone_retention_days: Option<std::num::NonZeroU64>,
    retry_budget_secs: Option<u64>,
}

/// The store could not be built.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// A setting is unusable.
    #[error("invalid Datastore configuration: {0}")]
    InvalidConfig(String),
    /// The client could not be created (endpoint unreachable, no credentials).
    #[error("cannot create the Datastore client for {url}: {message}")]
    Client {
        /// The endpoint.
        url: String,
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_config::Problems;

    #[test]
    fn defaults_are_valid_and_recipe_shaped() {
        let c = StoreConfig::new("p");
        assert!(c.validate().is_ok());
        assert_eq!(c.default_kind, "SyncEntity");
        assert_eq!(c.url(), PRODUCTION_ENDPOINT);
        assert_eq!(c.namespace_id(), "");
    }

    fn from(pairs: &[(&str, &str)]) -> Result<StoreConfig, Problems> {
        sync_config::read_pairs(pairs, |reader| StoreConfig::read("p", reader))
    }

    #[test]
    fn emulator_host_comes_from_the_lookup() -> Result<(), Problems> {
        let c = from(&[(DATASTORE_EMULATOR_HOST, "localhost:8081")])?;
        assert_eq!(c.url(), "http://localhost:8081");
        let c = from(&[(DATASTORE_EMULATOR_HOST, " ")])?;
        assert_eq!(c.url(), PRODUCTION_ENDPOINT);
        Ok(())
    }

    #[test]
    fn read_reads_the_stores_settings() -> Result<(), Problems> {
        let d = from(&[])?;
        assert_eq!(
            (d.default_kind.as_str(), d.namespace.as_deref()),
            ("SyncEntity", None)
        );
        assert_eq!(d.tombstone_retention, Duration::from_secs(7 * 86_400));
        assert_eq!(d.retry_budget, Duration::from_secs(20));
        assert_eq!(d.emulator_host, None);
        let c = from(&[
            (SYNC_KIND, "Product"),
            (DATASTORE_NAMESPACE, "ns"),
            (TOMBSTONE_RETENTION_DAYS, "14"),
            (RETRY_BUDGET_SECS, "0"),
            (DATASTORE_EMULATOR_HOST, "127.0.0.1:1"),
        ])?;
        assert_eq!(
            (c.default_kind.as_str(), c.namespace.as_deref()),
            ("Product", Some("ns"))
        );
        assert_eq!(c.tombstone_retention, Duration::from_secs(14 * 86_400));
        assert_eq!(c.retry_budget, Duration::ZERO);
        assert_eq!(c.url(), "http://127.0.0.1:1");
        // Events are sized against the keys this store writes.
        assert_eq!(c.limits.keys, c.key_layout());
        assert!(c.validate().is_ok());
        Ok(())
    }

    #[test]
    fn read_names_every_bad_variable() {
        let e = from(&[
            (SYNC_KIND, "__bad__"),
            (DATASTORE_NAMESPACE, "tenant a"),
            (TOMBSTONE_RETENTION_DAYS, "0"),
            (RETRY_BUDGET_SECS, "soon"),
        ])
        .expect_err("invalid");
        let text = e.to_string();
        assert_eq!(e.len(), 4, "{text}");
        for name in [
            SYNC_KIND,
            DATASTORE_NAMESPACE,
            TOMBSTONE_RETENTION_DAYS,
            RETRY_BUDGET_SECS,
        ] {
            assert!(text.contains(name), "{name} missing in:\n{text}");
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let mut c = StoreConfig::new("");
        assert!(c
            .validate()
            .expect_err("invalid")
            .to_string()
            .contains("project_id"));
        c.project_id = "p".into();
        c.tombstone_kind = "__x__".into();
        assert!(c
            .validate()
            .expect_err("invalid")
            .to_string()
            .contains("tombstone_kind"));
        c.tombstone_kind = "SyncEntity".into();
        assert!(c.validate().is_err());
        c.tombstone_kind = "SyncTombstone".into();
        // Datastore refuses such a namespace in every request: refused here.
        c.namespace = Some("n".repeat(101));
        assert!(c
            .validate()
            .expect_err("invalid")
            .to_string()
            .contains("namespace"));
        c.namespace = Some("tenant a".into());
        assert!(c.validate().is_err());
        c.namespace = Some("tenant_a".into());
        assert!(c.validate().is_ok());
        c.max_attempts = 0;
        assert!(c
            .validate()
            .expect_err("invalid")
            .to_string()
            .contains("max_attempts"));
    }
}
