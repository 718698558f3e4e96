//! The capture function's settings, read once at start-up through one
//! lookup function and validated together before anything connects: the
//! HTTP runtime's part (`sync-http`), Pub/Sub's (`sync-pubsub`) and its own:
//! where captured changes go (`EVENTS_TOPIC`, the recipe's events topic by
//! default), where what can never be forwarded goes (`DEAD_LETTER_TOPIC`),
//! which kinds are captured (`CAPTURE_KINDS`, every kind but the sync
//! function's own by default, which `SYNC_KIND` names), and how long the
//! start-up may take before it is reported late (`READY_TIMEOUT_SECS`).
//!
//! A configuration that would capture the sync function's own kinds is
//! refused here, naming them: their changes are the sync function's writes.

use serde::Deserialize;
use std::time::Duration;
use sync_capture::{CaptureFilter, OwnKinds};
use sync_config::{ConfigErrors, Reader, Var, GOOGLE_CLOUD_PROJECT, READY_TIMEOUT_SECS};
use sync_config::{CAPTURE_KINDS, DEAD_LETTER_TOPIC, EVENTS_TOPIC, SYNC_KIND};
use sync_http::RuntimeConfig;
use sync_pubsub::{check_topic, PubSubConfig};

/// Default of `READY_TIMEOUT_SECS`.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest request body read, whatever `MAX_BODY_BYTES` says. A
/// Datastore entity event holds at most two entities of 1 MiB each, their
/// keys and the mask: about 2.1 MB. Every body read can be dead-lettered
/// whole (Pub/Sub takes 10 MB of data), and the largest one's memory share
/// fits a 256 MiB instance ([`crate::handler::REQUEST_COST`]).
pub const MAX_EVENT_BODY_BYTES: usize = 4 << 20;

/// The function's own variables, one field each (see [`CaptureConfig::VARS`]).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "SCREAMING_SNAKE_CASE")]
struct Settings {
    google_cloud_project: Option<String>,
    events_topic: Option<String>,
    dead_letter_topic: Option<String>,
    capture_kinds: Option<String>,
    sync_kind: Option<String>,
    ready_timeout_secs: Option<u64>,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// Port, body limit (at most [`MAX_EVENT_BODY_BYTES`]), log format, memory.
    pub runtime: RuntimeConfig,
    /// Pub/Sub: `GOOGLE_CLOUD_PROJECT`, `PUBSUB_EMULATOR_HOST`, `PUBSUB_*` timeouts.
    pub pubsub: PubSubConfig,
    /// `EVENTS_TOPIC`, default `data-sync-events`.
    pub events_topic: String,
    /// `DEAD_LETTER_TOPIC`; without one, what can never be forwarded is
    /// answered 400 (and Eventarc redelivers it for a day).
    pub dead_letter_topic: Option<String>,
    /// `CAPTURE_KINDS` and `SYNC_KIND`: which kinds are captured.
    pub filter: CaptureFilter,
    /// `READY_TIMEOUT_SECS`, default [`DEFAULT_READY_TIMEOUT`].
    pub ready_within: Duration,
}

impl CaptureConfig {
    /// The function's own variables, and the form each takes; besides them
    /// it reads [`RuntimeConfig::VARS`] and [`PubSubConfig::VARS`].
    pub const VARS: &[Var] = &[
        Var::new(GOOGLE_CLOUD_PROJECT, "the Google Cloud project id"),
        Var::new(EVENTS_TOPIC, "a topic id or projects/PROJECT/topics/TOPIC"),
        Var::new(
            DEAD_LETTER_TOPIC,
            "a topic id or projects/PROJECT/topics/TOPIC",
        ),
        Var::new(CAPTURE_KINDS, "Datastore kinds separated by commas"),
        Var::new(SYNC_KIND, "a Datastore kind"),
        Var::new(
            READY_TIMEOUT_SECS,
            "a whole number of seconds from 1 to 600",
        ),
    ];

    /// Every variable the capture function reads.
    pub fn variables() -> impl Iterator<Item = &'static str> {
        [Self::VARS, RuntimeConfig::VARS, PubSubConfig::VARS]
            .into_iter()
            .flatten()
            .map(|v| v.name)
            .chain(RuntimeConfig::PROCESS_VARS.iter().copied())
    }

    /// Reads and validates every setting.
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every problem found, in every part.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        let no_files =
            |_: &str| -> std::io::Result<String> { Err(std::io::ErrorKind::Unsupported.into()) };
        let mut reader = Reader::new(&lookup, &no_files);
        let own: Settings = reader.read(Self::VARS);
        let project = own.google_cloud_project.unwrap_or_else(|| {
            reader.missing(GOOGLE_CLOUD_PROJECT, "the Google Cloud project id");
            String::new()
        });
        let mut runtime = RuntimeConfig::read(&mut reader);
        runtime.max_body_bytes = runtime.max_body_bytes.min(MAX_EVENT_BODY_BYTES);
        let pubsub = PubSubConfig::read(project, &mut reader);

        let events_topic = own
            .events_topic
            .unwrap_or_else(|| sync_core::wire::topology::EVENTS_TOPIC.to_string());
        if let Err(e) = check_topic(&events_topic) {
            reader.push(format!("{EVENTS_TOPIC}={events_topic:?} is invalid: {e}"));
        }
        let dead_letter_topic = own.dead_letter_topic;
        if let Some(t) = &dead_letter_topic {
            if let Err(e) = check_topic(t) {
                reader.push(format!("{DEAD_LETTER_TOPIC}={t:?} is invalid: {e}"));
            } else if *t == events_topic {
                reader.push(format!(
                    "{DEAD_LETTER_TOPIC}={t:?} is the topic captured changes go to ({EVENTS_TOPIC}): refused messages would reach the sync function"
                ));
            }
        }

        let sync_kind = match own.sync_kind {
            Some(kind) => match sync_core::value::check_name(&kind) {
                Ok(()) => kind,
                Err(e) => {
                    reader.push(format!("{SYNC_KIND}={kind:?} is invalid: {e}"));
                    sync_core::ingest::limits::DEFAULT_KIND.to_string()
                }
            },
            None => sync_core::ingest::limits::DEFAULT_KIND.to_string(),
        };
        let own_kinds = OwnKinds::new(&sync_kind);
        let filter = match own.capture_kinds {
            None => CaptureFilter::every_kind(own_kinds),
            Some(list) => {
                let kinds = list.split(',').map(str::trim).filter(|k| !k.is_empty());
                CaptureFilter::only(kinds, own_kinds.clone()).unwrap_or_else(|e| {
                    reader.push(format!("{CAPTURE_KINDS}={list:?} is refused: {e}"));
                    CaptureFilter::every_kind(own_kinds)
                })
            }
        };

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
                pubsub,
                events_topic,
                dead_letter_topic,
                filter,
                ready_within,
            })
            .map_err(|problems| ConfigErrors {
                program: "capture function",
                problems,
            })
    }

    /// `GOOGLE_CLOUD_PROJECT`.
    pub fn project_id(&self) -> &str {
        &self.pubsub.project
    }

    /// The captured kinds, for logs: the list, or "every kind but …".
    pub fn kinds_text(&self) -> String {
        match self.filter.kinds() {
            Some(kinds) => kinds.collect::<Vec<_>>().join(", "),
            None => format!(
                "every kind but the sync function's ({})",
                self.filter.own_kinds()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use sync_config::{MAX_BODY_BYTES, PUBSUB_EMULATOR_HOST};

    fn load(pairs: &[(&str, &str)]) -> Result<CaptureConfig, ConfigErrors> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CaptureConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_need_only_the_project() {
        let c = load(&[(GOOGLE_CLOUD_PROJECT, "p")]).expect("valid");
        assert_eq!(c.project_id(), "p");
        assert_eq!(c.events_topic, "data-sync-events");
        assert_eq!(c.dead_letter_topic, None);
        assert_eq!(c.runtime.port, 8080);
        assert_eq!(c.runtime.max_body_bytes, MAX_EVENT_BODY_BYTES);
        assert_eq!(c.ready_within, DEFAULT_READY_TIMEOUT);
        assert!(c.filter.kinds().is_none());
        for own in ["SyncEntity", "SyncTombstone", "SyncConflict", "SyncProbe"] {
            assert!(!c.filter.admits(own), "{own}");
        }
        assert!(c.filter.admits("Product"));
        assert!(
            c.kinds_text().contains("SyncTombstone"),
            "{}",
            c.kinds_text()
        );
    }

    #[test]
    fn every_setting_is_read() {
        let c = load(&[
            (GOOGLE_CLOUD_PROJECT, "p"),
            (EVENTS_TOPIC, "projects/p/topics/data-sync-events-ab12"),
            (DEAD_LETTER_TOPIC, "sync-dead-letters-ab12"),
            (CAPTURE_KINDS, " Product, Order ,"),
            (SYNC_KIND, "Synced"),
            (READY_TIMEOUT_SECS, "30"),
            (MAX_BODY_BYTES, "1024"),
            (PUBSUB_EMULATOR_HOST, "127.0.0.1:2"),
            ("PORT", "9000"),
        ])
        .expect("valid");
        assert_eq!(c.events_topic, "projects/p/topics/data-sync-events-ab12");
        assert_eq!(
            c.dead_letter_topic.as_deref(),
            Some("sync-dead-letters-ab12")
        );
        assert_eq!(
            c.filter.kinds().map(Iterator::collect::<Vec<_>>),
            Some(vec!["Order", "Product"])
        );
        assert!(c.filter.own_kinds().contains("Synced"));
        assert_eq!(c.ready_within, Duration::from_secs(30));
        assert_eq!(c.runtime.max_body_bytes, 1024);
        assert_eq!(c.runtime.port, 9000);
        assert_eq!(c.pubsub.emulator_host.as_deref(), Some("127.0.0.1:2"));
        assert_eq!(c.kinds_text(), "Order, Product");
    }

    #[test]
    fn capturing_the_sync_functions_own_kinds_is_refused_naming_them() {
        for (kinds, sync_kind, clash) in [
            ("Product,SyncEntity", None, "SyncEntity"),
            ("SyncTombstone", None, "SyncTombstone"),
            ("Product", Some("Product"), "Product"),
            ("Order,SyncConflict", Some("Synced"), "SyncConflict"),
        ] {
            let mut pairs = vec![(GOOGLE_CLOUD_PROJECT, "p"), (CAPTURE_KINDS, kinds)];
            pairs.extend(sync_kind.map(|k| (SYNC_KIND, k)));
            let err = load(&pairs).expect_err("own kinds");
            let text = err.to_string();
            assert_eq!(err.problems.len(), 1, "{text}");
            assert!(
                text.contains(CAPTURE_KINDS)
                    && text.contains(clash)
                    && text.contains("sync function's own"),
                "{text}"
            );
        }
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let err = load(&[
            (EVENTS_TOPIC, "x"),
            (DEAD_LETTER_TOPIC, "goog-dlq"),
            (CAPTURE_KINDS, " , "),
            (SYNC_KIND, "__bad__"),
            (READY_TIMEOUT_SECS, "0"),
            ("PORT", "http"),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        assert!(text.starts_with("the capture function's configuration is invalid:"));
        for needle in [
            GOOGLE_CLOUD_PROJECT,
            EVENTS_TOPIC,
            DEAD_LETTER_TOPIC,
            CAPTURE_KINDS,
            SYNC_KIND,
            READY_TIMEOUT_SECS,
            "PORT",
        ] {
            assert!(
                text.lines().any(|l| l.contains(needle)),
                "missing {needle} in:\n{text}"
            );
        }
        assert_eq!(err.problems.len(), 7, "{text}");
    }

    #[test]
    fn the_dead_letter_topic_cannot_be_the_events_topic() {
        let err = load(&[
            (GOOGLE_CLOUD_PROJECT, "p"),
            (DEAD_LETTER_TOPIC, "data-sync-events"),
        ])
        .expect_err("same topic");
        assert!(err.to_string().contains(EVENTS_TOPIC), "{err}");
    }
}
