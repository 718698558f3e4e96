//! The official Pub/Sub and Datastore emulators as processes a test can rely
//! on, and [`Emulators`], the hosts of this run by name.
//!
//! A test run shares one emulator of each kind. When the test script has
//! started them it exports `DATASTORE_EMULATOR_HOST` / `PUBSUB_EMULATOR_HOST`
//! and [`datastore`] / [`pubsub`] use those; otherwise the first call starts
//! one on a free port, with a watchdog that stops it when the test process
//! exits, so `cargo test` alone works and leaves nothing running. Tests that
//! pause or kill an emulator start their own with [`Emulator::start`].
//!
//! The Datastore API is served by the Datastore emulator or, when
//! [`DATASTORE_EMULATOR_FLAVOUR`] is `firestore`, by the Firestore emulator in
//! Datastore mode, which locks pessimistically like production.
//!
//! Std only: the processes and readiness probes block, so async code reaches
//! them through [`Emulators::shared`].

use crate::isolation::{free_port, TEST_PROJECT};
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Environment variable naming which emulator serves the Datastore API in this
/// run: `datastore` (the default when unset) or `firestore`. `scripts/test.sh`
/// sets it for each pass, next to `DATASTORE_EMULATOR_HOST`.
pub const DATASTORE_EMULATOR_FLAVOUR: &str = "DATASTORE_EMULATOR_FLAVOUR";

/// Which emulator serves the Datastore API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatastoreFlavour {
    /// The Datastore emulator: optimistic concurrency, a conflicting commit
    /// fails with `ABORTED` at once.
    Datastore,
    /// The Firestore emulator in Datastore mode: pessimistic locking like
    /// production, a conflicting transaction waits for the lock.
    Firestore,
}

impl DatastoreFlavour {
    /// The value of [`DATASTORE_EMULATOR_FLAVOUR`] that selects it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Datastore => "datastore",
            Self::Firestore => "firestore",
        }
    }

    /// Parses a value of [`DATASTORE_EMULATOR_FLAVOUR`]; empty means the default.
    ///
    /// # Errors
    /// For any other value, naming the accepted ones.
    pub fn parse(value: &str) -> Result<Self> {
        match value.trim() {
            "" | "datastore" => Ok(Self::Datastore),
            "firestore" => Ok(Self::Firestore),
            other => bail!(
                "{DATASTORE_EMULATOR_FLAVOUR}={other:?}: expected \"datastore\" or \"firestore\""
            ),
        }
    }

    /// The flavour of this run, from [`DATASTORE_EMULATOR_FLAVOUR`].
    ///
    /// # Errors
    /// When the variable holds an unknown value.
    pub fn from_env() -> Result<Self> {
        Self::parse(&std::env::var(DATASTORE_EMULATOR_FLAVOUR).unwrap_or_default())
    }

    /// The emulator to start for this flavour.
    pub fn emulator_kind(self) -> EmulatorKind {
        match self {
            Self::Datastore => EmulatorKind::Datastore,
            Self::Firestore => EmulatorKind::FirestoreDatastoreMode,
        }
    }
}

/// The Datastore flavour of this run (see [`DATASTORE_EMULATOR_FLAVOUR`]).
///
/// # Panics
/// When the variable holds an unknown value: the run is misconfigured and no
/// test touching Datastore could say what it tested.
pub fn datastore_flavour() -> DatastoreFlavour {
    DatastoreFlavour::from_env().unwrap_or_else(|e| panic!("{e:#}"))
}

/// Which emulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmulatorKind {
    /// `gcloud beta emulators datastore start --consistency=1.0`.
    Datastore,
    /// `gcloud beta emulators pubsub start`.
    PubSub,
    /// `gcloud emulators firestore start --database-mode=datastore-mode`: the
    /// Datastore API with production's pessimistic locking.
    FirestoreDatastoreMode,
}

impl EmulatorKind {
    /// The emulator serving the Datastore API in this run: the Datastore
    /// emulator, or the Firestore one when [`DATASTORE_EMULATOR_FLAVOUR`] says
    /// `firestore`. Tests that start their own Datastore (to pause or kill it)
    /// use this, so they run on the same flavour as the rest of the pass.
    ///
    /// # Panics
    /// As [`datastore_flavour`].
    pub fn datastore_of_this_run() -> Self {
        datastore_flavour().emulator_kind()
    }

    fn env_var(self) -> &'static str {
        match self {
            Self::Datastore | Self::FirestoreDatastoreMode => "DATASTORE_EMULATOR_HOST",
            Self::PubSub => "PUBSUB_EMULATOR_HOST",
        }
    }
}

/// The emulator hosts (`host:port`) a test talks to, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulators {
    /// Serves the Datastore API (the Datastore or the Firestore emulator).
    pub datastore: String,
    /// Serves the Pub/Sub API.
    pub pubsub: String,
}

impl Emulators {
    /// The shared emulators of this run ([`datastore`], [`pubsub`]), started
    /// on first use off the async runtime.
    ///
    /// # Errors
    /// When starting them panicked (no gcloud, not ready in time).
    pub async fn shared() -> Result<Self> {
        let datastore = tokio::task::spawn_blocking(|| datastore().host().to_string());
        let pubsub = tokio::task::spawn_blocking(|| pubsub().host().to_string());
        Ok(Self {
            datastore: datastore.await.context("starting the Datastore emulator")?,
            pubsub: pubsub.await.context("starting the Pub/Sub emulator")?,
        })
    }

    /// The same Pub/Sub emulator with another Datastore (a test's own, to
    /// pause or kill).
    pub fn with_datastore(&self, datastore: &Emulator) -> Self {
        Self {
            datastore: datastore.host().to_string(),
            pubsub: self.pubsub.clone(),
        }
    }

    /// Pub/Sub clients' settings on [`Self::pubsub`].
    pub fn pubsub_config(&self) -> sync_pubsub::PubSubConfig {
        sync_pubsub::PubSubConfig::new(TEST_PROJECT).with_emulator(self.pubsub.clone())
    }

    /// A store's settings on [`Self::datastore`], in `namespace`.
    pub fn store_config(&self, namespace: &str) -> sync_store::StoreConfig {
        let mut config = sync_store::StoreConfig::new(TEST_PROJECT);
        config.emulator_host = Some(self.datastore.clone());
        config.namespace = Some(namespace.to_string());
        config
    }

    /// The Datastore admin client (reads, queries, clean-up) on
    /// [`Self::datastore`], in `namespace`.
    ///
    /// # Errors
    /// When it cannot connect.
    pub async fn admin(&self, namespace: &str) -> Result<sync_store::DatastoreAdmin> {
        Ok(sync_store::DatastoreAdmin::connect(self.store_config(namespace)).await?)
    }
}

/// A running emulator this process started; stopped (whole process group) on drop.
#[derive(Debug)]
pub struct Emulator {
    host: String,
    project: String,
    child: Child,
}

impl Emulator {
    /// Starts an emulator on a free loopback port and waits until it answers
    /// `GET /` with `Ok` (deadline 60 s). All three answer so once they serve
    /// their API (the Firestore emulator too, in either database mode).
    ///
    /// # Errors
    /// When gcloud cannot be started or the emulator never becomes ready.
    pub fn start(kind: EmulatorKind, project: &str) -> Result<Self> {
        let port = free_port()?;
        let host = format!("127.0.0.1:{port}");
        let mut cmd = Command::new("gcloud");
        match kind {
            EmulatorKind::Datastore => {
                cmd.args([
                    "beta",
                    "emulators",
                    "datastore",
                    "start",
                    "--no-store-on-disk",
                    "--consistency=1.0",
                ]);
            }
            EmulatorKind::PubSub => {
                cmd.args(["beta", "emulators", "pubsub", "start"]);
            }
            EmulatorKind::FirestoreDatastoreMode => {
                // Keeps its data in memory only; it has no consistency knob
                // (queries are strongly consistent).
                cmd.args([
                    "emulators",
                    "firestore",
                    "start",
                    "--database-mode=datastore-mode",
                ]);
            }
        }
        // `--project` is gcloud's global flag: the Firestore emulator serves
        // any project, the others take it as their default.
        cmd.arg(format!("--host-port={host}"))
            .arg(format!("--project={project}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so stopping it also stops the Java child.
            .process_group(0);
        let child = cmd
            .spawn()
            .context("starting gcloud (is the Google Cloud CLI installed?)")?;
        let emulator = Self {
            host,
            project: project.to_string(),
            child,
        };
        wait_ready(&emulator.host, Duration::from_secs(60))
            .with_context(|| format!("{kind:?} emulator on {}", emulator.host))?;
        Ok(emulator)
    }

    /// `host:port` of the emulator.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The project id it was started with.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// Process group id (equal to the gcloud process id).
    pub fn pgid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (e.g. `STOP`, `CONT`) to the emulator's whole process group.
    ///
    /// # Errors
    /// When `kill` fails.
    pub fn signal(&self, signal: &str) -> Result<()> {
        signal_group(self.pgid(), signal)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = signal_group(self.pgid(), "KILL");
        let _ = self.child.wait();
    }
}

/// Sends `signal` to process group `pgid`.
///
/// # Errors
/// When `kill` cannot run or reports failure.
pub fn signal_group(pgid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{signal} -{pgid} failed");
    }
    Ok(())
}

/// A shared emulator: either the one the test script exported, or one started
/// for this process and stopped by a watchdog when the process exits.
#[derive(Debug)]
pub struct SharedEmulator {
    host: String,
}

impl SharedEmulator {
    /// `host:port`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `http://host:port`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.host)
    }
}

fn shared(kind: EmulatorKind, cell: &'static OnceLock<SharedEmulator>) -> &'static SharedEmulator {
    cell.get_or_init(|| {
        if let Ok(host) = std::env::var(kind.env_var()) {
            if !host.is_empty() {
                return SharedEmulator { host };
            }
        }
        let emulator = Emulator::start(kind, TEST_PROJECT)
            .unwrap_or_else(|e| panic!("cannot start the {kind:?} emulator: {e:#}"));
        spawn_watchdog(std::process::id(), emulator.pgid());
        let host = emulator.host.clone();
        // The watchdog owns its lifetime from here on.
        std::mem::forget(emulator);
        SharedEmulator { host }
    })
}

/// The shared Datastore emulator of this test run: the one the test script
/// exported, or else one of this run's flavour ([`datastore_flavour`]).
///
/// # Panics
/// When no emulator is configured and none can be started: a test that needs
/// the emulator cannot run without it.
pub fn datastore() -> &'static SharedEmulator {
    static CELL: OnceLock<SharedEmulator> = OnceLock::new();
    shared(EmulatorKind::datastore_of_this_run(), &CELL)
}

/// The shared Pub/Sub emulator of this test run.
///
/// # Panics
/// As [`datastore`].
pub fn pubsub() -> &'static SharedEmulator {
    static CELL: OnceLock<SharedEmulator> = OnceLock::new();
    shared(EmulatorKind::PubSub, &CELL)
}

/// Stops process group `pgid` once process `watched` has exited. (`sh` may be
/// dash, whose `kill` takes no `--`: a negative pid names the group.)
fn spawn_watchdog(watched: u32, pgid: u32) {
    let script = format!("while kill -0 {watched} 2>/dev/null; do sleep 0.5; done; kill -TERM -{pgid} 2>/dev/null; sleep 2; kill -KILL -{pgid} 2>/dev/null");
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
}

/// Polls `GET http://host/` until it answers `Ok`, or fails at the deadline.
///
/// # Errors
/// When the deadline passes first.
pub fn wait_ready(host: &str, timeout: Duration) -> Result<()> {
    poll_blocking(
        &format!("{host} to answer Ok"),
        timeout,
        Duration::from_millis(100),
        || {
            http_get(host, "/")
                .ok()
                .filter(|body| body.trim_end().ends_with("Ok"))
        },
    )
    .map(drop)
}

/// A minimal blocking `GET` returning the response body (for readiness probes).
///
/// # Errors
/// On connection or read failure, or a non-200 status.
pub fn http_get(host: &str, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    // Some servers (the Pub/Sub emulator) keep the connection open whatever the
    // request says, so read up to Content-Length rather than to end of stream.
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if response.is_empty() => return Err(e.into()),
            Err(_) => 0,
        };
        response.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&response).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if n == 0 || length.is_some_and(|len| body.len() >= len) {
                if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
                    bail!("unexpected answer: {}", head.lines().next().unwrap_or(""));
                }
                return Ok(body.to_string());
            }
        } else if n == 0 {
            bail!("connection closed before the headers ended");
        }
    }
}

/// Calls `check` every `every` until it returns `Some`, or fails after `timeout`
/// with `what` in the message. Blocking: for the emulators' readiness, which
/// is awaited before any async runtime needs them ([`crate::poll_until`] is
/// the async one).
fn poll_blocking<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_blocking_reports_timeout() {
        let r: Result<()> = poll_blocking(
            "never",
            Duration::from_millis(50),
            Duration::from_millis(10),
            || None,
        );
        assert!(r.expect_err("must time out").to_string().contains("never"));
    }

    #[test]
    fn watchdog_stops_the_group_when_the_watched_process_exits() -> Result<()> {
        let mut watched = Command::new("sleep").arg("30").spawn()?;
        let mut group = Command::new("sleep").arg("60").process_group(0).spawn()?;
        spawn_watchdog(watched.id(), group.id());
        watched.kill()?;
        watched.wait()?;
        poll_blocking(
            "the group to be stopped",
            Duration::from_secs(10),
            Duration::from_millis(100),
            || group.try_wait().ok().flatten(),
        )?;
        Ok(())
    }

    #[test]
    fn flavour_values_parse_and_unknown_ones_are_refused() {
        for flavour in [DatastoreFlavour::Datastore, DatastoreFlavour::Firestore] {
            assert_eq!(
                DatastoreFlavour::parse(flavour.as_str()).ok(),
                Some(flavour)
            );
        }
        assert_eq!(
            DatastoreFlavour::parse("").ok(),
            Some(DatastoreFlavour::Datastore)
        );
        let err = DatastoreFlavour::parse("firestore-native").expect_err("unknown");
        assert!(
            err.to_string().contains(DATASTORE_EMULATOR_FLAVOUR),
            "{err}"
        );
        assert_eq!(
            DatastoreFlavour::Firestore.emulator_kind(),
            EmulatorKind::FirestoreDatastoreMode
        );
    }
}
