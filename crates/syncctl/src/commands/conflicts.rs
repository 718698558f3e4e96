//! `syncctl conflicts`: conflict records, which value won, which lost, and why.

use super::clients::{store, Global};
use super::Format;
use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};

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

pub async fn run(g: &Global, a: ConflictsArgs) -> Result<()> {
    let store = store(g).await?;
    let records = store
        .conflicts(Some(&a.kind), a.entity_id.as_deref())
        .await
        .context("reading conflict records")?;
    match a.format {
        Format::Json => {
            let out: Vec<Value> = records
                .iter()
                .map(|r| {
                    json!({
                        "entity_kind": r.entity_kind, "entity_id": r.entity_id, "event_id": r.event_id,
                        "source": r.source, "correlation_id": r.correlation_id,
                        "recorded_at": r.recorded_at.map(|t| t.to_rfc3339()),
                        "conflict_count": r.conflict_count,
                        "fields": r.fields.iter().map(|f| json!({
                            "field": f.field, "rule": f.rule, "reason": f.reason,
                            "winner_value": f.winner_value, "winner_key": f.winner_key,
                            "loser_value": f.loser_value, "loser_key": f.loser_key,
                            "truncated": f.truncated,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Table => {
            println!("Found {} conflict records:", records.len());
            for r in &records {
                println!(
                    "  {} / {}: event {} from {} at {}",
                    r.entity_kind,
                    r.entity_id,
                    r.event_id,
                    r.source.as_deref().unwrap_or("unknown"),
                    r.recorded_at.map_or_else(|| "?".into(), |t| t.to_rfc3339())
                );
                for f in &r.fields {
                    let winner = f
                        .winner_value
                        .as_ref()
                        .map_or_else(|| "(deleted)".to_string(), |v| v.to_string());
                    println!(
                        "    {} [{}]: kept {} {} over {} {} ({})",
                        f.field, f.rule, winner, f.winner_key, f.loser_value, f.loser_key, f.reason
                    );
                }
            }
        }
    }
    Ok(())
}
