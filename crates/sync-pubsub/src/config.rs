//! Where Pub/Sub is and how the adapter talks to it; and the part of a
//! binary's settings that says so ([`PubSubConfig::read`]).

use serde::Deserialize;
use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;
use sync_config::{Reader, Var, PUBSUB_BATCH_DELAY_MS, PUBSUB_EMULATOR_HOST};
use sync_config::{PUBSUB_MAX_ORDERING_KEYS, PUBSUB_PUBLISH_TIMEOUT_MS};

/// Default per-publish timeout.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// Default batching delay: 2 ms. Each request waits for its own announcement,
/// so the delay is latency it pays (at most this much, once); in exchange,
/// announcements without an ordering key that arrive within it share one
/// publish RPC. Measured on the emulator with
/// `sync-bench batch-delay` (tasks pausing 0–20 ms for their Datastore work
/// between publishes, 200 entities, no keys): at 16 concurrent requests
/// 1.8–2.2 messages per RPC with 0 ms, 2.9–4.3 with 1 ms, 3.1–3.4 with 2 ms,
/// 5.2 with 5 ms; at 64, 4.3 / 9.5 / 13 / 17; p50 and p99 did not move
/// measurably from 0 to 2 ms on that (busy, 2-core) host, and a lone
/// sequential publish pays the delay in full. 2 ms is the smallest delay
/// that brought 16 concurrent requests to about 0.3 publishes per
/// announcement. Without keys the client does not wait for a batch in
/// flight before sending the next, so what shares an RPC is what arrives
/// within the delay: messages per RPC grow with an instance's request rate,
/// not with Pub/Sub's answer time. The emulator's timing (no network, an
/// overloaded host) is not production's: check `PUBSUB_BATCH_DELAY_MS`
/// against the function's own RPC counts there.
/// With ordering keys (one sequential batch per key), messages of different
/// entities never share an RPC, whatever the delay.
pub const DEFAULT_BATCH_DELAY: Duration = Duration::from_millis(2);
/// Default number of distinct ordering keys per publisher. The client keeps a
/// task and its buffers for every ordering key it has seen, for as long as the
/// publisher lives (about 19 KiB each, measured): with the entity id as the
/// key, memory would grow with the number of entities ever announced (379 MiB
/// after 20,000 entities). Replacing the publisher after this many keys bounds
/// it to about 5 MiB per topic: 15.2 MiB RSS after 20,000 entities with 250,
/// 22.2 MiB with 1000, and no measurable cost in throughput (the run in
/// `git show b9edc82:BENCHMARKS.md`).
pub const DEFAULT_MAX_ORDERING_KEYS: usize = 250;
/// Default timeout of admin and pull/ack calls.
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection settings shared by the publisher, the admin helpers and the puller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubSubConfig {
    /// Project of bare topic and subscription ids.
    pub project: String,
    /// `host:port` of the emulator; `None` for production (Application Default Credentials).
    pub emulator_host: Option<String>,
    /// Each publish fails with `PublishError::Unavailable` after this long.
    pub publish_timeout: Duration,
    /// How long the publisher holds a batch open, from its first message, for
    /// more messages to join it.
    pub batch_delay: Duration,
    /// Timeout of admin, pull and ack calls.
    pub rpc_timeout: Duration,
    /// Distinct ordering keys a topic's publisher serves before it is replaced.
    pub max_ordering_keys: usize,
}

impl PubSubConfig {
    /// Production settings for `project`.
    pub fn new(project: impl Into<String>) -> Self {
        Self {
            project: project.into(),
            emulator_host: None,
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
            batch_delay: DEFAULT_BATCH_DELAY,
            rpc_timeout: DEFAULT_RPC_TIMEOUT,
            max_ordering_keys: DEFAULT_MAX_ORDERING_KEYS,
        }
    }

    /// Talks to the emulator at `host:port` (an `http://` prefix is tolerated).
    pub fn with_emulator(mut self, host: impl Into<String>) -> Self {
        let host = host.into();
        let host = host
            .trim()
            .trim_start_matches("http://")
            .trim_end_matches('/');
        self.emulator_host = Some(host.to_string());
        self
    }

    /// Sets the per-publish timeout.
    pub fn with_publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    /// Sets the batching delay.
    pub fn with_batch_delay(mut self, delay: Duration) -> Self {
        self.batch_delay = delay;
        self
    }

    /// Sets how many distinct ordering keys a publisher serves before it is
    /// replaced (at least 1).
    pub fn with_max_ordering_keys(mut self, keys: usize) -> Self {
        self.max_ordering_keys = keys.max(1);
        self
    }

    /// The variables [`read`](Self::read) reads, and the form each takes.
    pub const VARS: &[Var] = &[
        Var::new(PUBSUB_EMULATOR_HOST, "`host:port` of the Pub/Sub emulator"),
        Var::new(
            PUBSUB_PUBLISH_TIMEOUT_MS,
            "a positive whole number of milliseconds",
        ),
        Var::new(PUBSUB_BATCH_DELAY_MS, "a whole number of milliseconds"),
        Var::new(PUBSUB_MAX_ORDERING_KEYS, "a positive whole number"),
    ];

    /// The Pub/Sub part of a binary's settings, for `project`: the
    /// emulator, the publish timeout and batching delay, the ordering keys
    /// per publisher. Each unusable value is noted and its default kept.
    pub fn read(project: impl Into<String>, reader: &mut Reader) -> Self {
        let vars: PubSubSettings = reader.read(Self::VARS);
        let mut config = Self::new(project);
        if let Some(host) = vars.pubsub_emulator_host {
            config = config.with_emulator(host);
        }
        if let Some(ms) = vars.pubsub_publish_timeout_ms {
            config.publish_timeout = Duration::from_millis(ms.get());
        }
        if let Some(ms) = vars.pubsub_batch_delay_ms {
            config.batch_delay = Duration::from_millis(ms);
        }
        if let Some(keys) = vars.pubsub_max_ordering_keys {
            config.max_ordering_keys = keys.get();
        }
        config
    }

    /// `http://host:port` of the emulator, when one is configured.
    pub fn emulator_endpoint(&self) -> Option<String> {
        self.emulator_host.as_ref().map(|h| format!("http://{h}"))
    }
}

/// The Pub/Sub variables, one field each (see [`PubSubConfig::VARS`]).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "SCREAMING_SNAKE_CASE")]
struct PubSubSettings {
    pubsub_emulator_host: Option<String>,
    pubsub_publish_timeout_ms: Option<NonZeroU64>,
    pubsub_batch_delay_ms: Option<u64>,
    pubsub_max_ordering_keys: Option<NonZeroUsize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_config::{Problems, GOOGLE_CLOUD_PROJECT};

    /// As a binary reads it: the project required, then the Pub/Sub part.
    fn from(pairs: &[(&str, &str)]) -> Result<PubSubConfig, Problems> {
        sync_config::read_pairs(pairs, |reader| {
            let project = reader.get(GOOGLE_CLOUD_PROJECT).unwrap_or_else(|| {
                reader.missing(GOOGLE_CLOUD_PROJECT, "a Google Cloud project id");
                String::new()
            });
            PubSubConfig::read(project, reader)
        })
    }

    #[test]
    fn defaults_and_emulator() -> Result<(), Problems> {
        let c = from(&[("GOOGLE_CLOUD_PROJECT", "p")])?;
        assert_eq!(c, PubSubConfig::new("p"));
        assert_eq!(c.publish_timeout, Duration::from_secs(10));
        assert_eq!(c.batch_delay, Duration::from_millis(2));
        assert_eq!(c.emulator_endpoint(), None);
        let c = from(&[
            ("GOOGLE_CLOUD_PROJECT", "p"),
            ("PUBSUB_EMULATOR_HOST", "localhost:8085"),
            ("PUBSUB_PUBLISH_TIMEOUT_MS", "2500"),
            ("PUBSUB_BATCH_DELAY_MS", "0"),
            ("PUBSUB_MAX_ORDERING_KEYS", "50"),
        ])?;
        assert_eq!(c.max_ordering_keys, 50);
        assert_eq!(
            c.emulator_endpoint().as_deref(),
            Some("http://localhost:8085")
        );
        assert_eq!(c.publish_timeout, Duration::from_millis(2500));
        assert_eq!(c.batch_delay, Duration::ZERO, "0 turns the delay off");
        Ok(())
    }

    #[test]
    fn errors_name_the_variable() {
        let e = from(&[]).expect_err("no project");
        assert!(e.to_string().contains("GOOGLE_CLOUD_PROJECT"), "{e}");
        let e = from(&[
            ("PUBSUB_PUBLISH_TIMEOUT_MS", "soon"),
            ("PUBSUB_MAX_ORDERING_KEYS", "0"),
        ])
        .expect_err("three problems");
        for name in [
            "GOOGLE_CLOUD_PROJECT",
            "PUBSUB_PUBLISH_TIMEOUT_MS",
            "PUBSUB_MAX_ORDERING_KEYS",
        ] {
            assert!(e.to_string().contains(name), "{name}: {e}");
        }
        let e = from(&[
            ("GOOGLE_CLOUD_PROJECT", "p"),
            ("PUBSUB_PUBLISH_TIMEOUT_MS", "10s"),
        ])
        .expect_err("units");
        assert!(e.to_string().contains("PUBSUB_PUBLISH_TIMEOUT_MS"), "{e}");
        let e = from(&[
            ("GOOGLE_CLOUD_PROJECT", "p"),
            ("PUBSUB_PUBLISH_TIMEOUT_MS", "0"),
        ])
        .expect_err("zero");
        assert!(e.to_string().contains("positive"), "{e}");
        for bad in ["0", "-1", "many"] {
            let e = from(&[
                ("GOOGLE_CLOUD_PROJECT", "p"),
                ("PUBSUB_MAX_ORDERING_KEYS", bad),
            ])
            .expect_err(bad);
            assert!(e.to_string().contains("PUBSUB_MAX_ORDERING_KEYS"), "{e}");
        }
    }

    #[test]
    fn emulator_host_forms() {
        assert_eq!(
            PubSubConfig::new("p")
                .with_emulator("http://127.0.0.1:8085/")
                .emulator_host
                .as_deref(),
            Some("127.0.0.1:8085")
        );
    }
}
