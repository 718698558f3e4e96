//! `syncctl query`: the entities of a kind, as the recipe's `query_datastore.py`.

use super::clients::{store, Global};
use super::Format;
use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};

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

fn text(v: Option<&Value>, default: &str) -> String {
    match v {
        None | Some(Value::Null) => default.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

pub async fn run(g: &Global, a: QueryArgs) -> Result<()> {
    let store = store(g).await?;
    let rows = store
        .query_kind(&a.kind)
        .await
        .with_context(|| format!("querying kind {}", a.kind))?;
    match a.format {
        Format::Json => {
            let out: Vec<Value> = rows
                .iter()
                .map(|(k, f)| json!({"key": k, "properties": f}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Table => {
            println!("Found {} entities in Datastore:", rows.len());
            for (key, f) in &rows {
                println!("  Entity: {key}");
                println!("  Name: {}", text(f.get("name"), "N/A"));
                println!("  Description: {}", text(f.get("description"), "N/A"));
                println!("  Status: {}", text(f.get("status"), "N/A"));
                println!("  Version: {}", text(f.get("version"), "0"));
                println!("  Sync Status: {}", text(f.get("sync_status"), "unknown"));
                println!("  Last Modified: {}", text(f.get("last_modified"), "N/A"));
                println!(
                    "  Conflict Resolved: {}",
                    text(f.get("conflict_resolved"), "N/A")
                );
                println!("  ---");
            }
        }
    }
    Ok(())
}
