//! The command line: every subcommand's arguments, as clap reads them.

use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Settings every subcommand shares.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Google Cloud project id.
    #[arg(long, global = true, env = sync_core::env::GOOGLE_CLOUD_PROJECT)]
    pub project: Option<String>,
    /// Datastore namespace (default namespace when unset).
    #[arg(long, global = true, env = sync_store::config::DATASTORE_NAMESPACE)]
    pub namespace: Option<String>,
    /// Datastore emulator `host:port`; production Datastore when unset.
    #[arg(
        long,
        global = true,
        env = sync_core::env::DATASTORE_EMULATOR_HOST,
        hide_env_values = false
    )]
    pub datastore_emulator_host: Option<String>,
    /// Pub/Sub emulator `host:port`; production Pub/Sub when unset.
    #[arg(long, global = true, env = sync_core::env::PUBSUB_EMULATOR_HOST)]
    pub pubsub_emulator_host: Option<String>,
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
    #[arg(long, default_value = sync_core::ingest::limits::DEFAULT_KIND)]
    pub kind: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// A kind.
#[derive(Args, Debug)]
pub struct KindArgs {
    /// Kind of the entities.
    #[arg(long, default_value = sync_core::ingest::limits::DEFAULT_KIND)]
    pub kind: String,
}

/// Arguments of `conflicts`.
#[derive(Args, Debug)]
pub struct ConflictsArgs {
    /// Only the conflicts of this entity.
    #[arg(long)]
    pub entity_id: Option<String>,
    /// Kind of the entities.
    #[arg(long, default_value = sync_core::ingest::limits::DEFAULT_KIND)]
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
