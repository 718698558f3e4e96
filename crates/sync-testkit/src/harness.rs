//! The end-to-end harness: the recipe's topology with per-test names on the
//! shared Pub/Sub emulator, the functions in-process on port 0 ([`InProcess`])
//! or, where a test needs a process (to kill it, or to read what it logged),
//! the binaries on free ports ([`FunctionProcess`]); the expected state
//! computed with the core's merge from what was actually published; `syncctl`
//! and its load runs ([`LoadRun`]).
//!
//! The binaries are the ones `cargo build --bins` left in `target/debug`
//! (the test script builds them first).

use crate::emulator::Emulators;
use crate::isolation::{free_port, unique_name, TEST_PROJECT};
use crate::wait::poll_until;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use sync_core::{
    merge, parse_event, EntityState, EventPublisher, MergePolicy, OutgoingMessage, ValidationLimits,
};
use sync_pubsub::{
    DeadLetter, PubSubAdmin, PubSubPublisher, PubSubPuller, PushEndpoint, SubscriptionConfig,
};
use sync_store::DatastoreAdmin;

/// Where [`bin_path`] finds the binaries instead of `target/debug`, relative
/// to the workspace or absolute (the benchmark runs the memory test on
/// release builds: `SYNC_BIN_DIR=target/release`).
pub const SYNC_BIN_DIR: &str = "SYNC_BIN_DIR";

/// Path of a binary built by `cargo build --bins` (in `target/debug`, or in
/// [`SYNC_BIN_DIR`] when set).
///
/// # Errors
/// When it has not been built.
pub fn bin_path(name: &str) -> Result<PathBuf> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = match std::env::var_os(SYNC_BIN_DIR).filter(|d| !d.is_empty()) {
        // Relative to the workspace, not to the test's working directory.
        Some(dir) => workspace.join(dir),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace.join("target"), PathBuf::from)
            .join("debug"),
    };
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: run `cargo build --bins` first (scripts/test.sh does)",
            path.display()
        );
    }
    Ok(path)
}

/// Names of one test's topology: the recipe's, prefixed to be unique.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Unique prefix.
    pub prefix: String,
    /// Main topic (`data-sync-events`).
    pub topic: String,
    /// Dead-letter topic.
    pub dead_letter_topic: String,
    /// Push subscription of the sync function.
    pub sync_subscription: String,
    /// Push subscription of the audit function.
    pub audit_subscription: String,
    /// Pull subscription on the dead-letter topic.
    pub dlq_subscription: String,
    /// Prefix of the announcement topics (`<prefix>external-sync-`).
    pub external_prefix: String,
    /// Datastore namespace.
    pub namespace: String,
}

impl Topology {
    /// Fresh names: the recipe's (`sync_core::wire::topology`), each behind a
    /// unique prefix, so tests never share a resource.
    pub fn new(label: &str) -> Self {
        use sync_core::wire::topology::{
            AUDIT_SUBSCRIPTION, DEAD_LETTER_TOPIC, DLQ_SUBSCRIPTION, EVENTS_TOPIC,
            EXTERNAL_TOPIC_PREFIX, SYNC_SUBSCRIPTION,
        };
        let prefix = unique_name(label);
        Self {
            topic: format!("{prefix}-{EVENTS_TOPIC}"),
            dead_letter_topic: format!("{prefix}-{DEAD_LETTER_TOPIC}"),
            sync_subscription: format!("{prefix}-{SYNC_SUBSCRIPTION}"),
            audit_subscription: format!("{prefix}-{AUDIT_SUBSCRIPTION}"),
            dlq_subscription: format!("{prefix}-{DLQ_SUBSCRIPTION}"),
            external_prefix: format!("{prefix}-{EXTERNAL_TOPIC_PREFIX}"),
            namespace: prefix.replace('-', "_"),
            prefix,
        }
    }

    /// Pull subscription on the announcement topic of `op`.
    pub fn external_subscription(&self, op: &str) -> String {
        format!("{}{op}-sub", self.external_prefix)
    }

    /// Creates topics and pull subscriptions (not the push ones).
    ///
    /// # Errors
    /// When the emulator refuses.
    pub async fn create_base(&self, admin: &PubSubAdmin) -> Result<()> {
        admin.create_topic(&self.topic).await?;
        admin.create_topic(&self.dead_letter_topic).await?;
        let pull = SubscriptionConfig {
            ack_deadline: Duration::from_secs(60),
            ..SubscriptionConfig::default()
        };
        admin
            .create_pull_subscription(&self.dlq_subscription, &self.dead_letter_topic, &pull)
            .await?;
        for op in ["create", "update", "delete"] {
            let topic = format!("{}{op}", self.external_prefix);
            admin.create_topic(&topic).await?;
            admin
                .create_pull_subscription(&self.external_subscription(op), &topic, &pull)
                .await?;
        }
        Ok(())
    }

    /// The settings of a sync function's push subscription: dead-lettering
    /// to this topology's topic after `attempts`.
    pub fn sync_subscription_config(&self, attempts: i32) -> SubscriptionConfig {
        SubscriptionConfig {
            ack_deadline: Duration::from_secs(60),
            dead_letter: Some(DeadLetter {
                topic: self.dead_letter_topic.clone(),
                max_delivery_attempts: attempts,
            }),
            ..SubscriptionConfig::default()
        }
    }

    /// The sync function's push subscription, dead-lettering after `attempts`.
    ///
    /// # Errors
    /// When the emulator refuses.
    pub async fn subscribe_sync(
        &self,
        admin: &PubSubAdmin,
        endpoint: &str,
        attempts: i32,
    ) -> Result<()> {
        self.subscribe_sync_as(admin, &self.sync_subscription, endpoint, attempts)
            .await
    }

    /// Another push subscription named `subscription` on the main topic, to a
    /// sync function at `endpoint`, dead-lettering to the same topic after
    /// `attempts` (e.g. a second instance that receives every message too).
    ///
    /// # Errors
    /// When the emulator refuses.
    pub async fn subscribe_sync_as(
        &self,
        admin: &PubSubAdmin,
        subscription: &str,
        endpoint: &str,
        attempts: i32,
    ) -> Result<()> {
        admin
            .create_push_subscription(
                subscription,
                &self.topic,
                &PushEndpoint::new(endpoint),
                &self.sync_subscription_config(attempts),
            )
            .await?;
        Ok(())
    }

    /// The audit function's push subscription.
    ///
    /// # Errors
    /// When the emulator refuses.
    pub async fn subscribe_audit(&self, admin: &PubSubAdmin, endpoint: &str) -> Result<()> {
        let config = SubscriptionConfig {
            ack_deadline: Duration::from_secs(30),
            ..SubscriptionConfig::default()
        };
        admin
            .create_push_subscription(
                &self.audit_subscription,
                &self.topic,
                &PushEndpoint::new(endpoint),
                &config,
            )
            .await?;
        Ok(())
    }
}

/// The three Pub/Sub clients of a test, on [`Emulators::pubsub`].
pub struct Clients {
    /// Topics and subscriptions.
    pub admin: PubSubAdmin,
    /// Publishing.
    pub publisher: PubSubPublisher,
    /// Pulling.
    pub puller: PubSubPuller,
}

impl Clients {
    /// Connects all three.
    ///
    /// # Errors
    /// When one cannot connect.
    pub async fn connect(emulators: &Emulators) -> Result<Self> {
        let config = emulators.pubsub_config();
        Ok(Self {
            admin: PubSubAdmin::connect(&config).await?,
            publisher: PubSubPublisher::connect(&config).await?,
            puller: PubSubPuller::connect(&config).await?,
        })
    }

    /// Publishes `data` (no attributes, no ordering key) to `topic`; returns
    /// the message id.
    ///
    /// # Errors
    /// When publishing fails.
    pub async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<String> {
        let message = OutgoingMessage {
            data,
            ..OutgoingMessage::default()
        };
        Ok(self.publisher.publish(topic, message).await?)
    }
}

/// The environment of a sync function for `topology` on `emulators`, logging
/// plain text without terminal colours.
pub fn sync_env(topology: &Topology, emulators: &Emulators) -> Vec<(String, String)> {
    [
        ("GOOGLE_CLOUD_PROJECT", TEST_PROJECT),
        ("PUBSUB_EMULATOR_HOST", &emulators.pubsub),
        ("DATASTORE_EMULATOR_HOST", &emulators.datastore),
        ("DATASTORE_NAMESPACE", &topology.namespace),
        ("DEAD_LETTER_TOPIC", &topology.dead_letter_topic),
        ("EXTERNAL_TOPIC_PREFIX", &topology.external_prefix),
        ("LOG_FORMAT", "text"),
        // Unstyled text (tracing-subscriber honours NO_COLOR): tests read it back.
        ("NO_COLOR", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A function served in this process on `127.0.0.1:0`; stopped on drop.
#[derive(Debug)]
pub struct InProcess {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl InProcess {
    /// Serves `router` on a free loopback port.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn serve(router: axum::Router) -> Result<Self> {
        let server = sync_http::Server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = server.local_addr();
        let task = tokio::spawn(async move {
            if let Err(e) = server.run(router, std::future::pending()).await {
                eprintln!("in-process function on {addr} stopped: {e}");
            }
        });
        Ok(Self { addr, task })
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The sync function configured from `env` (as its binary would be from the
/// environment, e.g. [`sync_env`]), on Datastore and Pub/Sub, in-process.
///
/// # Errors
/// When the settings are invalid or a client cannot connect.
pub async fn sync_in_process(env: &[(String, String)]) -> Result<InProcess> {
    let vars: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let lookup = |k: &str| vars.get(k).map(|v| v.to_string());
    let config = sync_function::Config::from_lookup(lookup, |p: &str| std::fs::read_to_string(p))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let app = sync_function::App::connect(config).await?;
    InProcess::serve(app.router()).await
}

/// Keeps the audit function's lines in memory, for tests to read back.
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    lines: Arc<Mutex<Vec<String>>>,
}

impl MemorySink {
    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every line, each parsed as one JSON object.
    ///
    /// # Panics
    /// When a line is not JSON: the function wrote a broken entry.
    pub fn entries(&self) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
            .collect()
    }
}

impl audit_function::AuditSink for MemorySink {
    fn write(&self, entries: &[serde_json::Value]) -> std::io::Result<()> {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        for e in entries {
            lines.push(serde_json::to_string(e)?);
        }
        Ok(())
    }
}

/// The audit function's state from `vars` alone, writing to a fresh
/// [`MemorySink`], stamped by `clock`.
///
/// # Panics
/// When the settings are invalid: the test gave them.
pub fn audit_state(
    vars: &[(&str, &str)],
    clock: fn() -> chrono::DateTime<chrono::Utc>,
) -> (audit_function::AppState, MemorySink) {
    let map: HashMap<&str, &str> = vars.iter().copied().collect();
    let config = audit_function::AuditConfig::from_lookup(|k| map.get(k).map(|v| v.to_string()))
        .expect("audit config");
    let sink = MemorySink::default();
    let state = audit_function::AppState {
        config: Arc::new(config),
        sink: Arc::new(sink.clone()),
        clock: Arc::new(clock),
    };
    (state, sink)
}

/// The audit function with default settings, in-process, and what it wrote.
///
/// # Errors
/// When no port can be bound.
pub async fn audit_in_process() -> Result<(InProcess, MemorySink)> {
    let (state, sink) = audit_state(&[], chrono::Utc::now);
    Ok((InProcess::serve(audit_function::router(state)).await?, sink))
}

/// A function binary running as a child process; killed on drop. For tests
/// that kill it or read its log; the others use [`InProcess`].
#[derive(Debug)]
pub struct FunctionProcess {
    name: String,
    env: Vec<(String, String)>,
    /// Port it listens on.
    pub port: u16,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    child: Option<Child>,
}

impl FunctionProcess {
    /// Starts `name` (a binary) with `env` on a free port and waits for `/healthz`.
    ///
    /// # Errors
    /// When it cannot start or never becomes healthy.
    pub async fn start(name: &str, env: Vec<(String, String)>) -> Result<Self> {
        let port = free_port()?;
        let log = std::env::temp_dir().join(format!("{}-{name}.log", unique_name("fn")));
        let mut p = Self {
            name: name.to_string(),
            env,
            port,
            log,
            child: None,
        };
        p.spawn().await?;
        Ok(p)
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    async fn spawn(&mut self) -> Result<()> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let err = out.try_clone()?;
        let child = Command::new(bin_path(&self.name)?)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PORT", self.port.to_string())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        self.child = Some(child);
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        let client = reqwest::Client::new();
        let healthy = poll_until(Duration::from_secs(30), &format!("{url} to answer"), || {
            let (client, url) = (&client, &url);
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            async move {
                if let Some(status) = exited {
                    bail!("exited with {status}");
                }
                let ok = client
                    .get(url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                Ok(ok.then_some(()))
            }
        })
        .await;
        healthy.with_context(|| format!("{}; log:\n{}", self.name, self.log_text()))
    }

    /// Everything it printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines it printed.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Kills it with SIGKILL (no graceful shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn().await
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The state every entity must reach: the core's merge of the published
/// messages (message id, data), folded per entity in publish order.
///
/// # Errors
/// When a message is not a valid event.
pub fn expected_states(
    messages: &[(String, Vec<u8>)],
    policy: &MergePolicy,
) -> Result<BTreeMap<String, EntityState>> {
    let now = chrono::Utc::now();
    let mut states: BTreeMap<String, EntityState> = BTreeMap::new();
    for (id, data) in messages {
        let event = parse_event(data, id, &ValidationLimits::default(), now)
            .with_context(|| format!("message {id}"))?;
        let state = states
            .entry(event.entity_id.as_str().to_string())
            .or_default();
        *state = merge(state, &event, policy).state;
    }
    Ok(states)
}

/// Polls Datastore until every entity shows the expected visible state
/// (fields and existence), or fails at the deadline naming what differs.
///
/// # Errors
/// At the deadline, with the last difference seen.
pub async fn wait_for_states(
    store: &DatastoreAdmin,
    expected: &BTreeMap<String, EntityState>,
    policy: &MergePolicy,
    timeout: Duration,
) -> Result<HashMap<String, EntityState>> {
    let last_difference = Mutex::new(String::new());
    poll_until(timeout, "Datastore to converge", || async {
        let mut actual = HashMap::new();
        let mut difference = None;
        for (id, want) in expected {
            let got = store.get(None, id).await?.map(|(_, s)| s);
            let matches = match &got {
                Some(s) => {
                    s.exists() == want.exists()
                        && s.visible_fields(policy) == want.visible_fields(policy)
                        && s.deleted_by() == want.deleted_by()
                }
                None => !want.exists() && want.deleted_by().is_none(),
            };
            if !matches && difference.is_none() {
                difference = Some(format!(
                    "{id}: want exists={} {:?}, got {:?}",
                    want.exists(),
                    want.visible_fields(policy),
                    got.as_ref().map(|s| (s.exists(), s.visible_fields(policy)))
                ));
            }
            if let Some(s) = got {
                actual.insert(id.clone(), s);
            }
        }
        Ok(match difference {
            None => Some(actual),
            Some(d) => {
                *last_difference
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = d;
                None
            }
        })
    })
    .await
    .with_context(|| {
        last_difference
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    })
}

/// Polls Datastore until entity `id` has reached `version`; returns its state.
///
/// # Errors
/// When reading fails, or at the deadline.
pub async fn wait_for_version(
    store: &DatastoreAdmin,
    id: &str,
    version: i64,
    deadline: Duration,
) -> Result<EntityState> {
    poll_until(deadline, &format!("{id} at version {version}"), || async {
        Ok(store
            .get(None, id)
            .await?
            .map(|(_, s)| s)
            .filter(|s| s.version() == version))
    })
    .await
}

/// Runs `syncctl` with `args` against `emulators`, in `namespace`; returns
/// stdout.
///
/// # Errors
/// When it fails (its stderr is in the error).
pub fn syncctl(args: &[&str], emulators: &Emulators, namespace: &str) -> Result<String> {
    let out = Command::new(bin_path("syncctl")?)
        .args(args)
        .env("GOOGLE_CLOUD_PROJECT", TEST_PROJECT)
        .env("PUBSUB_EMULATOR_HOST", &emulators.pubsub)
        .env("DATASTORE_EMULATOR_HOST", &emulators.datastore)
        .env("DATASTORE_NAMESPACE", namespace)
        .output()
        .context("running syncctl")?;
    if !out.status.success() {
        bail!(
            "syncctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// [`syncctl`] off the async runtime.
///
/// # Errors
/// As [`syncctl`].
pub async fn syncctl_async(
    args: Vec<String>,
    emulators: &Emulators,
    namespace: &str,
) -> Result<String> {
    let (emulators, namespace) = (emulators.clone(), namespace.to_string());
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        syncctl(&refs, &emulators, &namespace)
    })
    .await
    .context("syncctl task")?
}

/// Reads a `syncctl load --record` file: (message id, data) per line.
///
/// # Errors
/// When the file is unreadable or malformed.
pub fn read_record(path: &std::path::Path) -> Result<Vec<(String, Vec<u8>)>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            let id = v["message_id"].as_str().context("message_id")?.to_string();
            Ok((id, v["data"].to_string().into_bytes()))
        })
        .collect()
}

/// A `syncctl load` publishing to a topology's topic in the background,
/// recording every message it published.
pub struct LoadRun {
    record: PathBuf,
    handle: tokio::task::JoinHandle<Result<String>>,
}

impl LoadRun {
    /// Starts `syncctl load --topic <topic> --quiet --entity-prefix <prefix>
    /// --record <tmp> ARGS...`.
    pub fn start(topology: &Topology, emulators: &Emulators, args: &[&str]) -> Self {
        let record = std::env::temp_dir().join(format!("{}.jsonl", topology.prefix));
        let mut all: Vec<String> = [
            "load",
            "--topic",
            &topology.topic,
            "--quiet",
            "--entity-prefix",
            &topology.prefix,
            "--record",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        all.push(record.to_string_lossy().into_owned());
        all.extend(args.iter().map(|s| s.to_string()));
        let (emulators, namespace) = (emulators.clone(), topology.namespace.clone());
        let handle = tokio::spawn(async move { syncctl_async(all, &emulators, &namespace).await });
        Self { record, handle }
    }

    /// Waits for the load to finish and returns what it published.
    ///
    /// # Errors
    /// When `syncctl load` failed or its record is unreadable.
    pub async fn finish(self) -> Result<Vec<(String, Vec<u8>)>> {
        self.handle.await.context("load task")??;
        read_record(&self.record)
    }
}
