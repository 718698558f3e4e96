//! Unique names and free ports, for per-test isolation, and the size of the
//! load-sized cases ([`load_size`]).

use anyhow::{Context, Result};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Project id every emulator-backed test uses unless it needs its own.
pub const TEST_PROJECT: &str = "datastore-sync-test";

/// Set to `1` (by `scripts/test.sh --full`) to run the load-sized cases at
/// their full size; unset, they run at a size that still shows the same
/// behaviour, so the default test loop stays short.
pub const SYNC_TESTS_FULL: &str = "SYNC_TESTS_FULL";

/// `full` when [`SYNC_TESTS_FULL`] is `1`, else `quick`.
pub fn load_size(quick: usize, full: usize) -> usize {
    if std::env::var(SYNC_TESTS_FULL).is_ok_and(|v| v == "1") {
        full
    } else {
        quick
    }
}

/// A free TCP port on 127.0.0.1 (bound then released).
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A name unique in this test run, for namespaces, topics and subscriptions:
/// `prefix-<pid>-<time>-<counter>` (letters, digits and dashes only).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000_000)
        .unwrap_or(0);
    format!("{prefix}-{}-{t}-{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("t"), unique_name("t"));
    }

    #[test]
    fn free_port_is_bindable() -> Result<()> {
        let port = free_port()?;
        TcpListener::bind(("127.0.0.1", port))?;
        Ok(())
    }
}
