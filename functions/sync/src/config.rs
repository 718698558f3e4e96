//! The sync function's settings, read once at start-up through one lookup
//! function and validated together, before anything connects: a bad start
//! names every problem of every part at once.
//!
//! [`Config`] is composed of the parts the adapters read themselves through
//! the same `sync_config::Reader` (the HTTP runtime and the schema history,
//! `sync-http`; the store, `sync-store`; Pub/Sub, `sync-pubsub`) and the
//! function's own settings: which events are accepted and how they merge
//! (`MAX_CLOCK_SKEW_SECS`, `MERGE_POLICY_FILE`, both handed to the store,
//! which merges and sizes with them), where
//! announcements and dead letters go, whether announcements carry the
//! entity id as ordering key (`ANNOUNCE_ORDERING_KEYS`, off by default), and
//! how long the start-up warm-up may take before it is reported late
//! (`READY_TIMEOUT_SECS`).

use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use sync_config::{ConfigErrors, Reader, Var, GOOGLE_CLOUD_PROJECT, SCHEMA_HISTORY_FILE};
use sync_config::{ANNOUNCE_ORDERING_KEYS, DEAD_LETTER_TOPIC, EXTERNAL_TOPIC_PREFIX};
use sync_config::{
    MAX_CLOCK_SKEW_SECS, MERGE_POLICY_FILE, READY_TIMEOUT_SECS, SYNC_DEBUG_ENDPOINTS,
};
use sync_core::{MergePolicy, SchemaHistory};
use sync_http::RuntimeConfig;
/// Topic names are checked as `sync-pubsub` checks them (the capture
/// function checks its topics the same way).
pub use sync_pubsub::check_topic;
use sync_pubsub::PubSubConfig;
use sync_store::StoreConfig;

/// Default of `READY_TIMEOUT_SECS`.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The function's own variables, one field each (see [`Config::VARS`]).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "SCREAMING_SNAKE_CASE")]
struct Settings {
    google_cloud_project: Option<String>,
    external_topic_prefix: Option<String>,
    dead_letter_topic: Option<String>,
    max_clock_skew_secs: Option<u64>,
    #[serde(deserialize_with = "sync_config::parsed")]
    announce_ordering_keys: Option<bool>,
    ready_timeout_secs: Option<u64>,
    #[serde(deserialize_with = "sync_config::parsed")]
    sync_debug_endpoints: Option<bool>,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Port, body limit, log format.
    pub runtime: RuntimeConfig,
    /// Datastore: `GOOGLE_CLOUD_PROJECT`, `DATASTORE_EMULATOR_HOST`,
    /// `SYNC_KIND`, `DATASTORE_NAMESPACE`, `TOMBSTONE_RETENTION_DAYS`,
    /// `RETRY_BUDGET_SECS`; and the merge policy and validation limits
    /// below, which the handler validates events with too.
    pub store: StoreConfig,
    /// Pub/Sub: `GOOGLE_CLOUD_PROJECT`, `PUBSUB_EMULATOR_HOST`, `PUBSUB_*` timeouts.
    pub pubsub: PubSubConfig,
    /// `EXTERNAL_TOPIC_PREFIX`, default `external-sync-`.
    pub external_topic_prefix: String,
    /// `DEAD_LETTER_TOPIC`.
    pub dead_letter_topic: Option<String>,
    /// `ANNOUNCE_ORDERING_KEYS`, default `false`: announcements without an
    /// ordering key share publish requests; consumers order by `version`.
    pub announce_ordering_keys: bool,
    /// `READY_TIMEOUT_SECS`, default [`DEFAULT_READY_TIMEOUT`].
    pub ready_within: Duration,
    /// `SYNC_DEBUG_ENDPOINTS`, default `false`.
    pub debug_endpoints: bool,
    /// `SCHEMA_HISTORY_FILE`: how events are upcast before validation;
    /// default version 1 only.
    pub schema: Arc<SchemaHistory>,
}

impl Config {
    /// The function's own variables, and the form each takes; besides them
    /// it reads [`RuntimeConfig::VARS`], [`StoreConfig::VARS`],
    /// [`PubSubConfig::VARS`] and [`FILE_VARS`](Self::FILE_VARS).
    pub const VARS: &[Var] = &[
        Var::new(GOOGLE_CLOUD_PROJECT, "the Google Cloud project id"),
        Var::new(EXTERNAL_TOPIC_PREFIX, "a prefix of topic ids"),
        Var::new(
            DEAD_LETTER_TOPIC,
            "a topic id or projects/PROJECT/topics/TOPIC",
        ),
        Var::new(MAX_CLOCK_SKEW_SECS, "a whole number of seconds >= 0"),
        Var::new(ANNOUNCE_ORDERING_KEYS, "`true` or `false`"),
        Var::new(
            READY_TIMEOUT_SECS,
            "a whole number of seconds from 1 to 600",
        ),
        Var::new(SYNC_DEBUG_ENDPOINTS, "true or false"),
    ];

    /// The variables that name files the function reads.
    pub const FILE_VARS: &[&str] = &[MERGE_POLICY_FILE, SCHEMA_HISTORY_FILE];

    /// Every variable the sync function reads.
    pub fn variables() -> impl Iterator<Item = &'static str> {
        [
            Self::VARS,
            RuntimeConfig::VARS,
            StoreConfig::VARS,
            PubSubConfig::VARS,
        ]
        .into_iter()
        .flatten()
        .map(|v| v.name)
        .chain(Self::FILE_VARS.iter().copied())
        .chain(RuntimeConfig::PROCESS_VARS.iter().copied())
    }

    /// Reads and validates every setting. `read_file` loads the policy and
    /// schema history files.
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every problem found, in every part.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        read_file: impl Fn(&str) -> std::io::Result<String>,
    ) -> Result<Self, ConfigErrors> {
        let mut reader = Reader::new(&lookup, &read_file);
        let own: Settings = reader.read(Self::VARS);
        let project = own.google_cloud_project.unwrap_or_else(|| {
            reader.missing(GOOGLE_CLOUD_PROJECT, "the Google Cloud project id");
            String::new()
        });
        let runtime = RuntimeConfig::read(&mut reader);
        let mut store = StoreConfig::read(project.clone(), &mut reader);
        let pubsub = PubSubConfig::read(project, &mut reader);

        // Events are validated, and merged, as the store will write them.
        if let Some(skew) = own.max_clock_skew_secs {
            store.limits.max_clock_skew_secs = i64::try_from(skew).unwrap_or(i64::MAX);
        }
        if let Some((path, text)) = reader.file(MERGE_POLICY_FILE) {
            match MergePolicy::from_file_contents(&path, &text) {
                Ok(policy) => store.policy = Arc::new(policy),
                Err(e) => reader.push(format!("{MERGE_POLICY_FILE}={path:?}: {e}")),
            }
        }
        let schema = Arc::new(sync_http::config::schema_history(&mut reader));

        let external_topic_prefix = own
            .external_topic_prefix
            .unwrap_or_else(|| sync_core::wire::topology::EXTERNAL_TOPIC_PREFIX.into());
        if let Err(e) = check_topic(&format!("{external_topic_prefix}update")) {
            reader.push(format!("{EXTERNAL_TOPIC_PREFIX}={external_topic_prefix:?} does not make valid topic names: {e}"));
        }
        let dead_letter_topic = own.dead_letter_topic;
        if let Some(t) = &dead_letter_topic {
            if let Err(e) = check_topic(t) {
                reader.push(format!("{DEAD_LETTER_TOPIC}={t:?} is invalid: {e}"));
            }
        }
        let ready_within = match own.ready_timeout_secs {
            Some(secs) if (1..=600).contains(&secs) => Duration::from_secs(secs),
            Some(_) => {
                reader.invalid(READY_TIMEOUT_SECS);
                DEFAULT_READY_TIMEOUT
            }
            None => DEFAULT_READY_TIMEOUT,
        };

        reader
            .finish(Self {
                runtime,
                store,
                pubsub,
                external_topic_prefix,
                dead_letter_topic,
                announce_ordering_keys: own.announce_ordering_keys.unwrap_or(false),
                ready_within,
                debug_endpoints: own.sync_debug_endpoints.unwrap_or(false),
                schema,
            })
            .map_err(|problems| ConfigErrors {
                program: "sync function",
                problems,
            })
    }

    /// `GOOGLE_CLOUD_PROJECT`.
    pub fn project_id(&self) -> &str {
        &self.store.project_id
    }

    /// The kind of events that name none (`SYNC_KIND`, default `SyncEntity`).
    pub fn kind(&self) -> &str {
        &self.store.default_kind
    }

    /// The limits events are validated against (`MAX_CLOCK_SKEW_SECS`, and
    /// the key sizes in the store's namespace and kind).
    pub fn limits(&self) -> &sync_core::ValidationLimits {
        &self.store.limits
    }

    /// The announcement topic of an operation.
    pub fn external_topic(&self, operation: sync_core::Operation) -> String {
        sync_core::wire::topology::external_topic(&self.external_topic_prefix, operation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;
    use sync_config::{DATASTORE_EMULATOR_HOST, DATASTORE_NAMESPACE, PUBSUB_EMULATOR_HOST};
    use sync_config::{PUBSUB_MAX_ORDERING_KEYS, PUBSUB_PUBLISH_TIMEOUT_MS};
    use sync_config::{SYNC_KIND, TOMBSTONE_RETENTION_DAYS};

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(
            |k| map.get(k).cloned(),
            |path| match path {
                "policy.toml" => Ok("[fields]\nscore = \"max\"\n".into()),
                "bad.json" => Ok(r#"{"fields":{"score":"biggest"}}"#.into()),
                "history.toml" => Ok("current = 2\n[[upcast]]\nfrom = 1\n".into()),
                "cycle.json" => Ok(
                    r#"{"current":2,"upcast":[{"from":1,"to":1,"rename":{"a":"version"}}]}"#.into(),
                ),
                _ => Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file",
                )),
            },
        )
    }

    #[test]
    fn defaults_need_only_the_project() {
        let c = load(&[(GOOGLE_CLOUD_PROJECT, "p")]).expect("valid");
        assert_eq!(c.project_id(), "p");
        assert_eq!(c.pubsub.project, "p");
        assert_eq!(c.kind(), "SyncEntity");
        assert_eq!(c.runtime.port, 8080);
        assert_eq!(
            c.external_topic(sync_core::Operation::Create),
            "external-sync-create"
        );
        assert_eq!(c.dead_letter_topic, None);
        assert_eq!(c.limits().max_clock_skew_secs, 300);
        assert_eq!(c.store.tombstone_retention, Duration::from_secs(7 * 86_400));
        assert_eq!(*c.store.policy, MergePolicy::default());
        assert!(!c.announce_ordering_keys, "ordering keys are opt-in");
        assert_eq!(c.ready_within, DEFAULT_READY_TIMEOUT);
        assert!(!c.debug_endpoints);
        assert_eq!(*c.schema, SchemaHistory::default());
    }

    #[test]
    fn every_setting_is_read() {
        let c = load(&[
            (GOOGLE_CLOUD_PROJECT, "p"),
            (SYNC_KIND, "Product"),
            (DATASTORE_NAMESPACE, "ns"),
            (EXTERNAL_TOPIC_PREFIX, "out-"),
            (DEAD_LETTER_TOPIC, "projects/p/topics/dlq"),
            (MAX_CLOCK_SKEW_SECS, "60"),
            (MERGE_POLICY_FILE, "policy.toml"),
            (TOMBSTONE_RETENTION_DAYS, "14"),
            ("PORT", "9000"),
            (DATASTORE_EMULATOR_HOST, "127.0.0.1:1"),
            (PUBSUB_EMULATOR_HOST, "127.0.0.1:2"),
            (PUBSUB_MAX_ORDERING_KEYS, "50"),
            (ANNOUNCE_ORDERING_KEYS, "true"),
            (READY_TIMEOUT_SECS, "30"),
            (SYNC_DEBUG_ENDPOINTS, "true"),
            (SCHEMA_HISTORY_FILE, "history.toml"),
        ])
        .expect("valid");
        assert_eq!((c.schema.oldest(), c.schema.current()), (1, 2));
        assert_eq!(c.ready_within, Duration::from_secs(30));
        assert!(c.debug_endpoints);
        assert_eq!(
            (c.kind(), c.store.namespace.as_deref()),
            ("Product", Some("ns"))
        );
        assert_eq!(c.external_topic(sync_core::Operation::Delete), "out-delete");
        assert_eq!(
            c.dead_letter_topic.as_deref(),
            Some("projects/p/topics/dlq")
        );
        assert_eq!(c.limits().max_clock_skew_secs, 60);
        // Keys are sized in the namespace and kind the store writes them to.
        assert_eq!(
            (
                c.limits().keys.namespace.as_str(),
                c.limits().keys.default_kind.as_str()
            ),
            ("ns", "Product")
        );
        assert_eq!(c.store.policy.rule_for("score"), sync_core::FieldRule::Max);
        assert_eq!(
            c.store.tombstone_retention,
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(c.runtime.port, 9000);
        assert_eq!(c.store.emulator_host.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(c.pubsub.emulator_host.as_deref(), Some("127.0.0.1:2"));
        assert_eq!(c.pubsub.max_ordering_keys, 50);
        assert!(c.announce_ordering_keys);
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let err = load(&[
            (SYNC_KIND, "__bad__"),
            (DEAD_LETTER_TOPIC, "x"),
            (MAX_CLOCK_SKEW_SECS, "soon"),
            (MERGE_POLICY_FILE, "bad.json"),
            ("PORT", "http"),
            (ANNOUNCE_ORDERING_KEYS, "yes"),
            (READY_TIMEOUT_SECS, "0"),
            (SYNC_DEBUG_ENDPOINTS, "yes"),
            (SCHEMA_HISTORY_FILE, "cycle.json"),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        // The history's problems are listed each on its own line.
        for needle in ["cycle", "reserved"] {
            assert!(
                text.lines()
                    .any(|l| l.contains(SCHEMA_HISTORY_FILE) && l.contains(needle)),
                "missing {needle} in:\n{text}"
            );
        }
        for needle in [
            ANNOUNCE_ORDERING_KEYS,
            GOOGLE_CLOUD_PROJECT,
            SYNC_KIND,
            DEAD_LETTER_TOPIC,
            MAX_CLOCK_SKEW_SECS,
            MERGE_POLICY_FILE,
            "biggest",
            "PORT",
            READY_TIMEOUT_SECS,
            SYNC_DEBUG_ENDPOINTS,
        ] {
            assert!(text.contains(needle), "missing {needle} in:\n{text}");
        }
    }

    /// Pub/Sub's settings are read with the rest, before anything connects:
    /// a bad one is reported beside a bad store setting, not later and alone.
    #[test]
    fn a_bad_pubsub_value_is_reported_with_a_bad_store_value() {
        let err = load(&[
            (GOOGLE_CLOUD_PROJECT, "p"),
            (PUBSUB_PUBLISH_TIMEOUT_MS, "10s"),
            (TOMBSTONE_RETENTION_DAYS, "0"),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        assert_eq!(err.problems.len(), 2, "{text}");
        for needle in [PUBSUB_PUBLISH_TIMEOUT_MS, TOMBSTONE_RETENTION_DAYS] {
            assert!(text.contains(needle), "missing {needle} in:\n{text}");
        }
    }
}
