//! `syncctl init`: the recipe's initialization entity (`datastore_init.py`).

use super::clients::{store, Global};
use super::KindArgs;
use anyhow::{Context, Result};
use chrono::Utc;
use serde_json::json;
use std::collections::BTreeMap;
use sync_store::RawValue;

pub async fn run(g: &Global, a: KindArgs) -> Result<()> {
    let store = store(g).await?;
    let fields = BTreeMap::from([
        ("name".to_string(), RawValue::Json(json!("initialization"))),
        ("status".to_string(), RawValue::Json(json!("active"))),
        ("created_at".to_string(), RawValue::Timestamp(Utc::now())),
        ("version".to_string(), RawValue::Json(json!(1))),
        ("sync_status".to_string(), RawValue::Json(json!("pending"))),
    ]);
    store
        .put_raw(Some(&a.kind), "init-entity", &fields)
        .await
        .context("writing the init entity")?;
    println!(
        "Datastore initialized with entity: init-entity (kind {})",
        a.kind
    );
    Ok(())
}
