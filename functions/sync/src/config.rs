//! The sync function's settings, read once at start-up through a lookup
//! function and validated together: a bad start names every problem at once.

use std::fmt;
use std::time::Duration;
use sync_core::limits::KeyLayout;
use sync_core::{Limits, MergePolicy};
use sync_http::config::{ConfigError, Vars};
use sync_http::RuntimeConfig;

/// Project of the Datastore database and the topics (required).
pub const GOOGLE_CLOUD_PROJECT: &str = "GOOGLE_CLOUD_PROJECT";
/// `host:port` of the Datastore emulator; unset in production.
pub const DATASTORE_EMULATOR_HOST: &str = "DATASTORE_EMULATOR_HOST";
/// Default Datastore kind (events may name their own `kind`).
pub const SYNC_KIND: &str = "SYNC_KIND";
/// Datastore namespace (default: the default namespace).
pub const DATASTORE_NAMESPACE: &str = "DATASTORE_NAMESPACE";
/// Prefix of the announcement topics: `<prefix><operation>`.
pub const EXTERNAL_TOPIC_PREFIX: &str = "EXTERNAL_TOPIC_PREFIX";
/// Dead-letter topic: a topic id in the project or `projects/P/topics/T`.
pub const DEAD_LETTER_TOPIC: &str = "DEAD_LETTER_TOPIC";
/// Largest accepted clock skew of event timestamps, in seconds.
pub const MAX_CLOCK_SKEW_SECS: &str = "MAX_CLOCK_SKEW_SECS";
/// Path of a merge policy file (.json or .toml).
pub const MERGE_POLICY_FILE: &str = "MERGE_POLICY_FILE";
/// How long tombstones are kept before the TTL policy removes them, in days.
pub const TOMBSTONE_RETENTION_DAYS: &str = "TOMBSTONE_RETENTION_DAYS";
/// Time budget for retrying transient failures inside one request, in seconds.
pub const RETRY_BUDGET_SECS: &str = "RETRY_BUDGET_SECS";
/// `gcp` (default) or `memory`: the bench-only mode with an in-memory store and
/// publisher, to measure the HTTP layer without the emulators.
pub const SYNC_BACKEND: &str = "SYNC_BACKEND";

/// Where entities and messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Datastore and Pub/Sub (or their emulators).
    Gcp,
    /// In memory, for benchmarks of the HTTP layer only.
    Memory,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Port, body limit, log format.
    pub runtime: RuntimeConfig,
    /// `GOOGLE_CLOUD_PROJECT`.
    pub project_id: String,
    /// `DATASTORE_EMULATOR_HOST`.
    pub datastore_emulator_host: Option<String>,
    /// `SYNC_KIND`, default `SyncEntity`.
    pub kind: String,
    /// `DATASTORE_NAMESPACE`.
    pub namespace: Option<String>,
    /// `EXTERNAL_TOPIC_PREFIX`, default `external-sync-`.
    pub external_topic_prefix: String,
    /// `DEAD_LETTER_TOPIC`.
    pub dead_letter_topic: Option<String>,
    /// Validation limits (`MAX_CLOCK_SKEW_SECS`).
    pub limits: Limits,
    /// The merge policy (`MERGE_POLICY_FILE`, default all `lww`).
    pub policy: MergePolicy,
    /// `TOMBSTONE_RETENTION_DAYS`, default 7 (the subscription's retention).
    pub tombstone_retention: Duration,
    /// `RETRY_BUDGET_SECS`, default 20 (of a 60 s ack deadline).
    pub retry_budget: Duration,
    /// `SYNC_BACKEND`.
    pub backend: Backend,
}

/// Everything wrong with the environment, one problem a line.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the sync function's configuration is invalid:")?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Reads and validates every setting. `read_file` loads the policy file.
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every problem found.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        read_file: impl Fn(&str) -> std::io::Result<String>,
    ) -> Result<Self, ConfigErrors> {
        let vars = Vars::new(&lookup);
        let mut errors = Vec::new();
        let mut check = |r: Result<(), String>| {
            if let Err(e) = r {
                errors.push(e);
            }
        };

        let runtime = RuntimeConfig::from_lookup(&lookup);
        let project_id = vars.required(GOOGLE_CLOUD_PROJECT, "the Google Cloud project id");
        let kind = vars
            .get(SYNC_KIND)
            .unwrap_or_else(|| sync_core::limits::DEFAULT_KIND.into());
        check(
            sync_core::value::check_name(&kind)
                .map_err(|e| format!("{SYNC_KIND}={kind:?} is invalid: {e}")),
        );
        let namespace = vars.get(DATASTORE_NAMESPACE);
        // Events are validated against the keys the store will write: this
        // namespace and kind.
        let keys = KeyLayout {
            namespace: namespace.clone().unwrap_or_default(),
            default_kind: kind.clone(),
            ..KeyLayout::default()
        };
        let external_topic_prefix = vars
            .get(EXTERNAL_TOPIC_PREFIX)
            .unwrap_or_else(|| sync_core::wire::topology::EXTERNAL_TOPIC_PREFIX.into());
        check(check_topic(&format!("{external_topic_prefix}update")).map_err(|e| format!("{EXTERNAL_TOPIC_PREFIX}={external_topic_prefix:?} does not make valid topic names: {e}")));
        let dead_letter_topic = vars.get(DEAD_LETTER_TOPIC);
        if let Some(t) = &dead_letter_topic {
            check(check_topic(t).map_err(|e| format!("{DEAD_LETTER_TOPIC}={t:?} is invalid: {e}")));
        }
        let skew: Result<i64, ConfigError> =
            vars.parse_or(MAX_CLOCK_SKEW_SECS, 300, "a whole number of seconds >= 0");
        let retention: Result<u64, ConfigError> =
            vars.parse_or(TOMBSTONE_RETENTION_DAYS, 7, "a whole number of days >= 1");
        let budget: Result<u64, ConfigError> =
            vars.parse_or(RETRY_BUDGET_SECS, 20, "a whole number of seconds");
        let backend = match vars.get(SYNC_BACKEND).as_deref() {
            None | Some("gcp") => Ok(Backend::Gcp),
            Some("memory") => Ok(Backend::Memory),
            Some(other) => Err(format!(
                "{SYNC_BACKEND}={other:?} is invalid: expected `gcp` or `memory`"
            )),
        };
        let policy = match vars.get(MERGE_POLICY_FILE) {
            None => Ok(MergePolicy::default()),
            Some(path) => read_file(&path)
                .map_err(|e| format!("{MERGE_POLICY_FILE}={path:?} cannot be read: {e}"))
                .and_then(|text| {
                    MergePolicy::from_file_contents(&path, &text)
                        .map_err(|e| format!("{MERGE_POLICY_FILE}={path:?}: {e}"))
                }),
        };

        let runtime = runtime.map_err(|e| errors.push(e.to_string())).ok();
        let project_id = project_id.map_err(|e| errors.push(e.to_string())).ok();
        let skew = skew
            .map_err(|e| errors.push(e.to_string()))
            .ok()
            .filter(|s| {
                if *s < 0 {
                    errors.push(format!("{MAX_CLOCK_SKEW_SECS} must not be negative"));
                }
                *s >= 0
            });
        let retention = retention
            .map_err(|e| errors.push(e.to_string()))
            .ok()
            .filter(|d| {
                if *d == 0 {
                    errors.push(format!("{TOMBSTONE_RETENTION_DAYS} must be at least 1"));
                }
                *d > 0
            });
        let budget = budget.map_err(|e| errors.push(e.to_string())).ok();
        let backend = backend.map_err(|e| errors.push(e)).ok();
        let policy = policy.map_err(|e| errors.push(e)).ok();

        match (
            runtime, project_id, skew, retention, budget, backend, policy,
        ) {
            (
                Some(runtime),
                Some(project_id),
                Some(skew),
                Some(retention),
                Some(budget),
                Some(backend),
                Some(policy),
            ) if errors.is_empty() => Ok(Self {
                runtime,
                project_id,
                datastore_emulator_host: vars.get(DATASTORE_EMULATOR_HOST),
                kind,
                namespace,
                external_topic_prefix,
                dead_letter_topic,
                limits: Limits {
                    max_clock_skew_secs: skew,
                    keys,
                    ..Limits::default()
                },
                policy,
                tombstone_retention: Duration::from_secs(retention * 86_400),
                retry_budget: Duration::from_secs(budget),
                backend,
            }),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// The announcement topic of an operation.
    pub fn external_topic(&self, operation: sync_core::Operation) -> String {
        sync_core::wire::topology::external_topic(&self.external_topic_prefix, operation)
    }
}

/// Checks a topic id, or a full `projects/P/topics/T` path, against Pub/Sub's
/// naming rules: 3-255 characters, starting with a letter, letters, digits and
/// `-_.~+%` only, not starting with `goog`.
pub fn check_topic(topic: &str) -> Result<(), String> {
    let id = match topic.strip_prefix("projects/") {
        Some(rest) => {
            let mut parts = rest.split('/');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(p), Some("topics"), Some(t), None) if !p.is_empty() => t,
                _ => return Err("expected a topic id or projects/PROJECT/topics/TOPIC".into()),
            }
        }
        None => topic,
    };
    if !(3..=255).contains(&id.len()) {
        return Err("a topic id has 3 to 255 characters".into());
    }
    if !id.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err("a topic id starts with a letter".into());
    }
    if id.starts_with("goog") {
        return Err("a topic id cannot start with `goog`".into());
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.~+%".contains(*c)))
    {
        return Err(format!("character {c:?} is not allowed in a topic id"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
        assert_eq!(c.project_id, "p");
        assert_eq!(c.kind, "SyncEntity");
        assert_eq!(c.runtime.port, 8080);
        assert_eq!(
            c.external_topic(sync_core::Operation::Create),
            "external-sync-create"
        );
        assert_eq!(c.dead_letter_topic, None);
        assert_eq!(c.limits.max_clock_skew_secs, 300);
        assert_eq!(c.tombstone_retention, Duration::from_secs(7 * 86_400));
        assert_eq!(c.backend, Backend::Gcp);
        assert_eq!(c.policy, MergePolicy::default());
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
            (SYNC_BACKEND, "memory"),
            ("PORT", "9000"),
            (DATASTORE_EMULATOR_HOST, "127.0.0.1:1"),
        ])
        .expect("valid");
        assert_eq!(
            (c.kind.as_str(), c.namespace.as_deref()),
            ("Product", Some("ns"))
        );
        assert_eq!(c.external_topic(sync_core::Operation::Delete), "out-delete");
        assert_eq!(
            c.dead_letter_topic.as_deref(),
            Some("projects/p/topics/dlq")
        );
        assert_eq!(c.limits.max_clock_skew_secs, 60);
        // Keys are sized in the namespace and kind the store writes them to.
        assert_eq!(
            (
                c.limits.keys.namespace.as_str(),
                c.limits.keys.default_kind.as_str()
            ),
            ("ns", "Product")
        );
        assert_eq!(c.policy.rule_for("score"), sync_core::FieldRule::Max);
        assert_eq!(c.backend, Backend::Memory);
        assert_eq!(c.runtime.port, 9000);
        assert_eq!(c.datastore_emulator_host.as_deref(), Some("127.0.0.1:1"));
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let err = load(&[
            (SYNC_KIND, "__bad__"),
            (DEAD_LETTER_TOPIC, "x"),
            (MAX_CLOCK_SKEW_SECS, "soon"),
            (MERGE_POLICY_FILE, "bad.json"),
            (SYNC_BACKEND, "disk"),
            ("PORT", "http"),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        for needle in [
            GOOGLE_CLOUD_PROJECT,
            SYNC_KIND,
            DEAD_LETTER_TOPIC,
            MAX_CLOCK_SKEW_SECS,
            MERGE_POLICY_FILE,
            "biggest",
            SYNC_BACKEND,
            "PORT",
        ] {
            assert!(text.contains(needle), "missing {needle} in:\n{text}");
        }
    }

    #[test]
    fn topic_names_follow_pubsub_rules() {
        assert!(check_topic("sync-dead-letters").is_ok());
        assert!(check_topic("projects/p/topics/sync-dead-letters").is_ok());
        for bad in [
            "ab",
            "1abc",
            "goog-x",
            "a b c",
            "projects/p/subscriptions/x",
            "projects//topics/x",
        ] {
            assert!(check_topic(bad).is_err(), "{bad}");
        }
    }
}
