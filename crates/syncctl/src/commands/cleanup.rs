//! `syncctl cleanup`: every entity of a kind, its tombstones and conflict
//! records deleted (the recipe's `cleanup_datastore.py`).

use super::clients::{store, Global};
use super::KindArgs;
use anyhow::{Context, Result};

pub async fn run(g: &Global, a: KindArgs) -> Result<()> {
    let store = store(g).await?;
    let config = store.config().clone();
    for kind in [
        a.kind.as_str(),
        config.tombstone_kind.as_str(),
        config.conflict_kind.as_str(),
    ] {
        let n = store
            .delete_all(kind)
            .await
            .with_context(|| format!("deleting kind {kind}"))?;
        if n == 0 {
            println!("No {kind} entities found to delete");
        } else {
            println!("Deleted {n} {kind} entities from Datastore");
        }
    }
    Ok(())
}
