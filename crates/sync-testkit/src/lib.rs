//! Test support for datastore-sync, one crate for every test (a
//! dev-dependency only):
//!
//! - [`capture`]: an application writing straight to Datastore, and the
//!   events Eventarc would deliver for its writes, delivered to the capture
//!   function (no emulator emits them);
//! - [`burst`](mod@burst): many pushes at one function at once, shed ones sent
//!   again as Pub/Sub would, and a process's peak memory;
//! - [`emulator`]: the official emulators as processes, shared by a run or a
//!   test's own, and [`Emulators`], their hosts by name;
//! - [`wait`]: async [`poll_until`] and [`pull_until`] with deadlines, whose
//!   timeouts name what was awaited, and [`drain`];
//! - [`raw_event`]: the change event's JSON as a publisher sends it, valid or not ([`event()`]);
//! - [`request`]: deliveries as the functions receive them (wrapped push,
//!   unwrapped push) and [`fixture`](mod@fixture): the captured ones in `tests/fixtures`;
//! - [`harness`]: the end-to-end harness: the recipe's topology with per-test
//!   names, the functions in-process or as processes, the expected states
//!   from the core's merge, `syncctl` and its load runs;
//! - [`isolation`]: unique names and free ports for per-test isolation, and
//!   [`load_size`], the size of the load-sized cases.

pub mod burst;
pub mod capture;
pub mod emulator;
pub mod fixture;
pub mod harness;
pub mod isolation;
pub mod raw_event;
pub mod request;
pub mod wait;

pub use emulator::{
    datastore, datastore_flavour, pubsub, DatastoreFlavour, Emulator, EmulatorKind, Emulators,
    DATASTORE_EMULATOR_FLAVOUR,
};
pub use fixture::{fixture, CapturedRequest};
pub use isolation::{free_port, load_size, unique_name, SYNC_TESTS_FULL, TEST_PROJECT};
pub use raw_event::{event, Event};
pub use request::{post, push, unwrapped, PushEnvelope, Unwrapped};
pub use wait::{drain, poll_until, pull_until};
