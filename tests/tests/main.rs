//! The integration and end-to-end suites, one module each, in one test
//! executable (`cargo test -p sync-tests`, or `scripts/test.sh`, which starts
//! the emulators first). Each module's doc says what it runs against.
//!
//! `scripts/test.sh` runs all of them on the Datastore emulator, then again
//! those whose outcome can depend on how Datastore locks (see `FIRESTORE_TESTS`
//! there) on the Firestore emulator in Datastore mode.
mod capture;
mod datastore;
mod deploy;
mod e2e;
mod lag;
mod limits;
mod log_lines;
mod memory;
mod pubsub;
mod readiness;
mod removal;
mod resync;
mod rpc_counts;
mod schema;
mod sync_function;
mod trace;
mod unwrapped;
