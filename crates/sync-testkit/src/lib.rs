//! sync-testkit (placeholder)
