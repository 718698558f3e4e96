//! The subcommands, one module each with its arguments and its `run`;
//! [`clients`] holds the settings they share and the clients built from them.

pub mod capture_write;
pub mod cleanup;
pub mod clients;
pub mod conflicts;
pub mod dlq;
pub mod init;
pub mod lag;
pub mod load;
pub mod publish;
pub mod pull;
pub mod query;
pub mod resync;
pub mod setup;
pub mod topology;

use clap::{Args, ValueEnum};

/// Output format.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Readable text, as the recipe's scripts print.
    #[default]
    Table,
    /// JSON.
    Json,
}

/// A kind.
#[derive(Args, Debug)]
pub struct KindArgs {
    /// Kind of the entities.
    #[arg(long, default_value = sync_core::ingest::limits::DEFAULT_KIND)]
    pub kind: String,
}
