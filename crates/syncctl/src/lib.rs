//! What of `syncctl` other crates use: reading the sync function's log
//! ([`lag`]: processed lines, publish-to-apply latency, percentiles), shared
//! with `sync-bench`'s log follower so both read the log one way. The
//! subcommands themselves are the `syncctl` binary's.

pub mod lag;
