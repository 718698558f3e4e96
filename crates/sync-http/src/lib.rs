//! sync-http (placeholder)
