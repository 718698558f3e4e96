//! Harness for the end-to-end tests: the recipe's topology with per-test
//! names on the shared Pub/Sub emulator, the function binaries as real
//! processes on free ports, and the expected state computed with the core's
//! merge from what was actually published.
//!
//! The binaries are the ones `cargo build --bins` left in `target/debug`
//! (the test script builds them first).

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use sync_core::{merge, parse_event, EntityState, Limits, MergePolicy};
use sync_pubsub::{
    DeadLetter, PubSubAdmin, PubSubConfig, PubSubPuller, PushEndpoint, ReceivedMessage,
    SubscriptionConfig,
};
use sync_store::{DatastoreAdmin, StoreConfig};
use sync_testkit::{free_port, unique_name, TEST_PROJECT};

/// Path of a binary built by `cargo build --bins`.
///
/// # Errors
/// When it has not been built.
pub fn bin_path(name: &str) -> Result<PathBuf> {
    let dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let path = dir.join("debug").join(name);
    if !path.exists() {
        bail!(
            "{} is missing: run `cargo build --bins` first (scripts/test.sh does)",
            path.display()
        );
    }
    Ok(path)
}

/// Emulator hosts of this test run (started on first use).
pub async fn hosts() -> Result<(String, String)> {
    tokio::task::spawn_blocking(|| {
        (
            sync_testkit::pubsub().host().to_string(),
            sync_testkit::datastore().host().to_string(),
        )
    })
    .await
    .context("starting the emulators")
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
        let config = SubscriptionConfig {
            ack_deadline: Duration::from_secs(60),
            dead_letter: Some(DeadLetter {
                topic: self.dead_letter_topic.clone(),
                max_delivery_attempts: attempts,
            }),
            ..SubscriptionConfig::default()
        };
        admin
            .create_push_subscription(
                subscription,
                &self.topic,
                &PushEndpoint::new(endpoint),
                &config,
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

/// Pub/Sub clients on the shared emulator.
pub async fn pubsub_config() -> Result<PubSubConfig> {
    let (ps, _) = hosts().await?;
    Ok(PubSubConfig::new(TEST_PROJECT).with_emulator(ps))
}

/// A Datastore store on `datastore_host`, in `namespace`.
///
/// # Errors
/// When it cannot connect.
pub async fn store(datastore_host: &str, namespace: &str) -> Result<DatastoreAdmin> {
    let mut config = StoreConfig::new(TEST_PROJECT);
    config.emulator_host = Some(datastore_host.to_string());
    config.namespace = Some(namespace.to_string());
    Ok(DatastoreAdmin::connect(config).await?)
}

/// A function binary running as a child process; killed on drop.
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
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "{} exited with {status}; log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not healthy after 30 s; log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

/// The environment of a sync function process for `topology`, logging plain
/// text without terminal colours.
pub fn sync_env(
    topology: &Topology,
    pubsub_host: &str,
    datastore_host: &str,
) -> Vec<(String, String)> {
    [
        ("GOOGLE_CLOUD_PROJECT", TEST_PROJECT),
        ("PUBSUB_EMULATOR_HOST", pubsub_host),
        ("DATASTORE_EMULATOR_HOST", datastore_host),
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
        let event = parse_event(data, id, &Limits::default(), now)
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
/// At the deadline, with the first difference.
pub async fn wait_for_states(
    store: &DatastoreAdmin,
    expected: &BTreeMap<String, EntityState>,
    policy: &MergePolicy,
    timeout: Duration,
) -> Result<HashMap<String, EntityState>> {
    let deadline = Instant::now() + timeout;
    loop {
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
        match difference {
            None => return Ok(actual),
            Some(d) if Instant::now() > deadline => {
                bail!("Datastore did not converge within {timeout:?}: {d}")
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Pulls (and acks) until `count` messages arrived or `timeout` passed.
///
/// # Errors
/// When pulling fails.
pub async fn pull_at_least(
    puller: &PubSubPuller,
    subscription: &str,
    count: usize,
    timeout: Duration,
) -> Result<Vec<ReceivedMessage>> {
    let deadline = Instant::now() + timeout;
    let mut out: Vec<ReceivedMessage> = Vec::new();
    while out.len() < count && Instant::now() < deadline {
        let batch = puller
            .pull(subscription, 100, Duration::from_secs(1))
            .await?;
        let ids: Vec<String> = batch.iter().map(|m| m.ack_id.clone()).collect();
        if !ids.is_empty() {
            puller.ack(subscription, &ids).await?;
        }
        out.extend(batch);
    }
    Ok(out)
}

/// Pulls for `quiet` and returns whatever arrived (for "nothing else arrived" checks).
///
/// # Errors
/// When pulling fails.
pub async fn drain(
    puller: &PubSubPuller,
    subscription: &str,
    quiet: Duration,
) -> Result<Vec<ReceivedMessage>> {
    let batch = puller.pull(subscription, 1000, quiet).await?;
    let ids: Vec<String> = batch.iter().map(|m| m.ack_id.clone()).collect();
    if !ids.is_empty() {
        puller.ack(subscription, &ids).await?;
    }
    Ok(batch)
}

/// Runs `syncctl` with `args` against the emulators; returns stdout.
///
/// # Errors
/// When it fails (its stderr is in the error).
pub fn syncctl(
    args: &[&str],
    pubsub_host: &str,
    datastore_host: &str,
    namespace: &str,
) -> Result<String> {
    let out = Command::new(bin_path("syncctl")?)
        .args(args)
        .env("GOOGLE_CLOUD_PROJECT", TEST_PROJECT)
        .env("PUBSUB_EMULATOR_HOST", pubsub_host)
        .env("DATASTORE_EMULATOR_HOST", datastore_host)
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
    pub fn start(
        topology: &Topology,
        pubsub_host: &str,
        datastore_host: &str,
        args: &[&str],
    ) -> Self {
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
        let (ps, ds, ns) = (
            pubsub_host.to_string(),
            datastore_host.to_string(),
            topology.namespace.clone(),
        );
        let handle = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            syncctl(&refs, &ps, &ds, &ns)
        });
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

/// Awaits `check` every 100 ms until it returns `Some`, failing once `timeout`
/// has passed (the async twin of `sync_testkit::poll_until`, for checks that
/// talk to the emulators).
///
/// # Errors
/// What `check` returns, or the deadline passing first.
pub async fn poll<T, F, Fut>(timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("condition not met within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
