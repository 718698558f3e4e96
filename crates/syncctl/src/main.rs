//! `syncctl`: the operator CLI of datastore-sync.
//!
//! The recipe's Python helpers (`data_publisher.py`, `query_datastore.py`,
//! `datastore_init.py`, `cleanup_datastore.py`) as subcommands, plus what an
//! operator of the sync function needs: conflict records, dead-letter
//! inspection and replay, a load generator, and the local topology on the
//! emulators (`setup` creates it, `topology` prints its names for scripts),
//! the publish-to-apply lag percentiles of a local run's log (`lag`, in
//! the library: `syncctl::lag`), and the current state announced again for a
//! new downstream consumer (`resync`, paged, resumable, rate-limited).
//! Events are built as `sync_core::wire::EventMessage`; names come from
//! `sync_core::wire::topology` and `dead_letter`. Honours `PUBSUB_EMULATOR_HOST`
//! and `DATASTORE_EMULATOR_HOST`; without them it talks to Google Cloud with
//! Application Default Credentials.

mod commands;
mod load;
mod resync;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Operate datastore-sync: publish events, inspect Datastore, conflicts and dead letters.
#[derive(Parser, Debug)]
#[command(name = "syncctl", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Settings every subcommand shares.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Google Cloud project id.
    #[arg(long, global = true, env = sync_config::GOOGLE_CLOUD_PROJECT)]
    pub project: Option<String>,
    /// Datastore namespace (default namespace when unset).
    #[arg(long, global = true, env = sync_config::DATASTORE_NAMESPACE)]
    pub namespace: Option<String>,
    /// Datastore emulator `host:port`; production Datastore when unset.
    #[arg(
        long,
        global = true,
        env = sync_config::DATASTORE_EMULATOR_HOST,
        hide_env_values = false
    )]
    pub datastore_emulator_host: Option<String>,
    /// Pub/Sub emulator `host:port`; production Pub/Sub when unset.
    #[arg(long, global = true, env = sync_config::PUBSUB_EMULATOR_HOST)]
    pub pubsub_emulator_host: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Publish one change event (the recipe's data_publisher.py).
    Publish(PublishArgs),
    /// List the entities of a kind (the recipe's query_datastore.py).
    Query(QueryArgs),
    /// Write the recipe's initialization entity (datastore_init.py).
    Init(KindArgs),
    /// Delete every entity of a kind, its tombstones and conflict records (cleanup_datastore.py).
    Cleanup(KindArgs),
    /// List conflict records: which value won, which lost, and why.
    Conflicts(ConflictsArgs),
    /// Inspect or replay dead-lettered messages.
    Dlq(DlqArgs),
    /// Pull (and optionally acknowledge) messages from a subscription.
    Pull(PullArgs),
    /// Publish many generated events, for demos and benchmarks.
    Load(LoadArgs),
    /// Create the recipe's topics and subscriptions (idempotent), e.g. on the emulator.
    Setup(SetupArgs),
    /// Print the topology's names as `deploy/lib.sh`'s variables (`NAME=value`, bash syntax).
    Topology(TopologyArgs),
    /// Publish-to-apply lag (count, p50, p90, p99, max) from a sync-function log (LOG_FORMAT=json).
    Lag(LagArgs),
    /// Announce the current entities again (resync=true), for a new downstream consumer.
    Resync(ResyncArgs),
}

/// Arguments of `publish`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    /// Topic id or projects/P/topics/T.
    #[arg(long)]
    pub topic: String,
    /// Entity id (Datastore key name).
    #[arg(long)]
    pub entity_id: String,
    /// Operation.
    #[arg(long, value_enum)]
    pub operation: OperationArg,
    /// Entity name.
    #[arg(long)]
    pub name: Option<String>,
    /// Entity description.
    #[arg(long)]
    pub description: Option<String>,
    /// Entity status.
    #[arg(long)]
    pub status: Option<String>,
    /// Extra fields as a JSON object (merged after --name/--description/--status).
    #[arg(long)]
    pub data: Option<String>,
    /// Event timestamp (ISO-8601); now (UTC) when unset.
    #[arg(long)]
    pub timestamp: Option<String>,
    /// The writer's name.
    #[arg(long, default_value = "data_publisher")]
    pub source: String,
    /// Message attributes, `KEY=VALUE`, repeatable.
    #[arg(long = "attribute", value_name = "KEY=VALUE")]
    pub attributes: Vec<String>,
    /// W3C trace context for the `googclient_traceparent` attribute
    /// (`00-TRACEID-SPANID-FLAGS`); a new trace, sampled, when unset (and no
    /// `--attribute` sets it). The trace id is printed.
    #[arg(long)]
    pub traceparent: Option<String>,
}

/// The three operations.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationArg {
    /// Create.
    Create,
    /// Update.
    Update,
    /// Delete.
    Delete,
}

impl From<OperationArg> for sync_core::Operation {
    fn from(op: OperationArg) -> Self {
        match op {
            OperationArg::Create => Self::Create,
            OperationArg::Update => Self::Update,
            OperationArg::Delete => Self::Delete,
        }
    }
}

/// Output format.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Readable text, as the recipe's scripts print.
    #[default]
    Table,
    /// JSON.
    Json,
}

/// Arguments of `query`.
#[derive(Args, Debug)]
pub struct QueryArgs {
    /// Kind to list.
    #[arg(long, default_value = sync_core::limits::DEFAULT_KIND)]
    pub kind: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// A kind.
#[derive(Args, Debug)]
pub struct KindArgs {
    /// Kind of the entities.
    #[arg(long, default_value = sync_core::limits::DEFAULT_KIND)]
    pub kind: String,
}

/// Arguments of `conflicts`.
#[derive(Args, Debug)]
pub struct ConflictsArgs {
    /// Only the conflicts of this entity.
    #[arg(long)]
    pub entity_id: Option<String>,
    /// Kind of the entities.
    #[arg(long, default_value = sync_core::limits::DEFAULT_KIND)]
    pub kind: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Arguments of `dlq`.
#[derive(Args, Debug)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub action: DlqAction,
}

/// What to do with dead letters.
#[derive(Subcommand, Debug)]
pub enum DlqAction {
    /// Show dead-lettered messages with their reason (they stay in the subscription).
    List(DlqSelect),
    /// Republish selected messages to the main topic; each is acknowledged only
    /// after its republish succeeded, so a crash loses nothing.
    Replay(DlqReplay),
}

/// Which dead letters.
#[derive(Args, Debug)]
pub struct DlqSelect {
    /// The dead-letter subscription.
    #[arg(long, default_value = sync_core::wire::topology::DLQ_SUBSCRIPTION)]
    pub subscription: String,
    /// Only messages with this `error_code` attribute.
    #[arg(long)]
    pub error_code: Option<String>,
    /// At most this many messages.
    #[arg(long, default_value_t = 100)]
    pub max: usize,
    /// Stop waiting for more messages after this many seconds.
    #[arg(long, default_value_t = 5)]
    pub wait_secs: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Arguments of `dlq replay`.
#[derive(Args, Debug)]
pub struct DlqReplay {
    #[command(flatten)]
    pub select: DlqSelect,
    /// Topic to republish to.
    #[arg(long, default_value = sync_core::wire::topology::EVENTS_TOPIC)]
    pub topic: String,
    /// Show what would be replayed, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace the message data with this text before republishing (a fixed message).
    #[arg(long)]
    pub data: Option<String>,
}

/// Arguments of `pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// Subscription id or path.
    #[arg(long)]
    pub subscription: String,
    /// At most this many messages.
    #[arg(long, default_value_t = 10)]
    pub max: usize,
    /// Stop waiting for more messages after this many seconds.
    #[arg(long, default_value_t = 5)]
    pub wait_secs: u64,
    /// Acknowledge what was pulled (otherwise it is released for redelivery).
    #[arg(long)]
    pub ack: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Arguments of `load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Topic id or path.
    #[arg(long, default_value = sync_core::wire::topology::EVENTS_TOPIC)]
    pub topic: String,
    /// Number of distinct events.
    #[arg(long)]
    pub events: usize,
    /// Number of entities they spread over.
    #[arg(long)]
    pub entities: usize,
    /// Fraction of events published a second time (0.0-1.0).
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,
    /// Publish in random order (timestamps still follow generation order).
    #[arg(long)]
    pub shuffle: bool,
    /// Messages per second (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Share of deletes among events (0.0-1.0).
    #[arg(long, default_value_t = 0.05)]
    pub deletes: f64,
    /// Approximate size of each event's data, in bytes.
    #[arg(long, default_value_t = 0)]
    pub payload_bytes: usize,
    /// Publishes in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Random seed (reproducible runs).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Prefix of entity ids.
    #[arg(long, default_value = "load")]
    pub entity_prefix: String,
    /// Write every published message (message id, data) as JSON lines here.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Arguments of `setup`.
#[derive(Args, Debug)]
pub struct SetupArgs {
    /// Push endpoint of the sync function (e.g. http://127.0.0.1:8081/).
    #[arg(long)]
    pub sync_endpoint: String,
    /// Push endpoint of the audit function.
    #[arg(long)]
    pub audit_endpoint: String,
    /// Suffix appended to every name (`-SUFFIX`), as the recipe's RANDOM_SUFFIX.
    #[arg(long)]
    pub suffix: Option<String>,
    /// Also create a pull subscription on each external-sync topic (`<topic>-sub`).
    #[arg(long)]
    pub external_subscriptions: bool,
    /// Push the bare message data (`pushConfig.noWrapper`) instead of the JSON envelope.
    #[arg(long)]
    pub push_no_wrapper: bool,
    /// With --push-no-wrapper: send the message id, subscription, publish time,
    /// ordering key and attributes as headers (`noWrapper.writeMetadata`).
    #[arg(long, requires = "push_no_wrapper")]
    pub push_no_wrapper_write_metadata: bool,
}

/// Arguments of `topology`.
#[derive(Args, Debug)]
pub struct TopologyArgs {
    /// Suffix, as `setup --suffix`.
    #[arg(long)]
    pub suffix: Option<String>,
}

/// Arguments of `lag`.
#[derive(Args, Debug)]
pub struct LagArgs {
    /// The sync function's output (JSON lines; other lines are skipped and counted).
    #[arg(long)]
    pub log: PathBuf,
    /// Print the figures as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `resync`.
#[derive(Args, Debug)]
pub struct ResyncArgs {
    /// Kind of the entities.
    #[arg(long, default_value = sync_core::limits::DEFAULT_KIND)]
    pub kind: String,
    /// Only this entity (one lookup, no paging).
    #[arg(long, conflicts_with_all = ["prefix", "resume"])]
    pub entity_id: Option<String>,
    /// Only entities whose id starts with this.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Publish every announcement to this one topic (a single new consumer's)
    /// instead of the per-operation topics.
    #[arg(long)]
    pub topic: Option<String>,
    /// Prefix of the per-operation topics, as the sync function's
    /// EXTERNAL_TOPIC_PREFIX.
    #[arg(long, default_value = sync_core::wire::topology::EXTERNAL_TOPIC_PREFIX)]
    pub topic_prefix: String,
    /// Entities read and announced per second (`N` or `N/s`).
    #[arg(long, default_value = "200/s", value_parser = resync::parse_rate)]
    pub rate: f64,
    /// Read and count, publish nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Continue after the page of this cursor (a `cursor:` line's token).
    #[arg(long, value_parser = resync::parse_cursor)]
    pub resume: Option<resync::Cursor>,
    /// Entities per Datastore query page (one cursor line each).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub page_size: u16,
    /// List the tombstones of deleted entities (one delete announcement's JSON
    /// per line on stdout) instead of announcing entities; publishes nothing.
    #[arg(long, conflicts_with = "topic")]
    pub tombstones: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let g = &cli.global;
        match cli.command {
            Command::Publish(a) => commands::publish(g, a).await,
            Command::Query(a) => commands::query(g, a).await,
            Command::Init(a) => commands::init(g, a).await,
            Command::Cleanup(a) => commands::cleanup(g, a).await,
            Command::Conflicts(a) => commands::conflicts(g, a).await,
            Command::Dlq(a) => match a.action {
                DlqAction::List(s) => commands::dlq_list(g, s).await,
                DlqAction::Replay(r) => commands::dlq_replay(g, r).await,
            },
            Command::Pull(a) => commands::pull(g, a).await,
            Command::Load(a) => load::run(g, a).await,
            Command::Setup(a) => commands::setup(g, a).await,
            Command::Topology(a) => {
                commands::topology(&a);
                Ok(())
            }
            Command::Lag(a) => syncctl::lag::run(&a.log, a.json),
            Command::Resync(a) => resync::run(g, a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", explain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: client errors often repeat their
/// source's text in their own message, which `{:#}` would print again.
fn explain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::explain;

    #[test]
    fn causes_already_in_a_message_are_not_repeated() {
        let inner = anyhow::anyhow!("connection refused");
        let outer = inner
            .context("publish failed: connection refused")
            .context("publishing to t");
        assert_eq!(
            explain(&outer),
            "publishing to t: publish failed: connection refused"
        );
        let plain = anyhow::anyhow!("a").context("b");
        assert_eq!(explain(&plain), "b: a");
    }

    #[test]
    fn setup_write_metadata_needs_no_wrapper() {
        use clap::Parser as _;
        let base = [
            "syncctl",
            "setup",
            "--sync-endpoint",
            "http://127.0.0.1:1/",
            "--audit-endpoint",
            "http://127.0.0.1:2/",
        ];
        let parse = |extra: &[&str]| {
            super::Cli::try_parse_from(base.iter().chain(extra)).map(|cli| match cli.command {
                super::Command::Setup(a) => (a.push_no_wrapper, a.push_no_wrapper_write_metadata),
                _ => (false, false),
            })
        };
        assert_eq!(parse(&[]).ok(), Some((false, false)));
        assert_eq!(parse(&["--push-no-wrapper"]).ok(), Some((true, false)));
        assert_eq!(
            parse(&["--push-no-wrapper", "--push-no-wrapper-write-metadata"]).ok(),
            Some((true, true))
        );
        assert!(parse(&["--push-no-wrapper-write-metadata"]).is_err());
    }
}
