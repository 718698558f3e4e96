//! sync-store (placeholder)
