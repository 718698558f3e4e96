//! Test support for datastore-sync, one crate for every test (a
//! dev-dependency only):
//!
//! - [`burst`](mod@burst): many pushes at one function at once, shed ones sent
//!   again as Pub/Sub would, and a process's peak memory;
//! - [`emulator`]: the official emulators as processes, shared by a run or a
//!   test's own, and [`Emulators`], their hosts by name;
//! - [`wait`]: async [`poll_until`] and [`pull_until`] with deadlines, whose
//!   timeouts name what was awaited, and [`drain`];
//! - [`event`](mod@event): the change event's JSON ([`event()`]);
//! - [`request`]: deliveries as the functions receive them (wrapped push,
//!   unwrapped push) and [`fixture`](mod@fixture): the captured ones in `tests/fixtures`;
//! - [`harness`]: the end-to-end harness: the recipe's topology with per-test
//!   names, the functions in-process or as processes, the expected states
//!   from the core's merge, `syncctl` and its load runs;
//! - unique names and free ports for per-test isolation (below).

pub mod burst;
pub mod emulator;
pub mod event;
pub mod fixture;
pub mod harness;
pub mod request;
pub mod wait;

pub use emulator::{
    datastore, datastore_flavour, pubsub, DatastoreFlavour, Emulator, EmulatorKind, Emulators,
    DATASTORE_EMULATOR_FLAVOUR,
};
pub use event::{event, Event};
pub use fixture::{fixture, CapturedRequest};
pub use request::{post, push, unwrapped, PushEnvelope, Unwrapped};
pub use wait::{drain, poll_until, pull_until};

use anyhow::{Context, Result};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Project id every emulator-backed test uses unless it needs its own.
pub const TEST_PROJECT: &str = "datastore-sync-test";

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
