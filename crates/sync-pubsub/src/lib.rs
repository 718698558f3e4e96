//! sync-pubsub (placeholder)
