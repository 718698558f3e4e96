//! The allocator setting the memory budget relies on: glibc maps every
//! allocation of 128 KiB or more on its own, so freeing it gives the memory
//! back to the OS at once, and resident memory follows what the requests hold
//! (what [`crate::admission`] bounds). Left to itself, glibc raises that
//! threshold after the first large free, and freed megabytes stay resident.
//!
//! [`ensure_mmap_threshold`], called first thing in `main`, re-executes the
//! binary with the tunable `glibc.malloc.mmap_threshold` in `GLIBC_TUNABLES`
//! when the environment lacks it; an operator's own value is kept.

use std::ffi::OsString;

/// The environment variable glibc reads its tunables from, at start.
pub use sync_config::GLIBC_TUNABLES;
/// The tunable: allocations of at least this many bytes are mapped on their own.
pub const MMAP_THRESHOLD_TUNABLE: &str = "glibc.malloc.mmap_threshold";
/// glibc's own starting threshold, 128 KiB, kept fixed.
pub const MMAP_THRESHOLD_BYTES: u32 = 128 * 1024;
/// Set in the environment of the re-executed process, so that a process that
/// lost the tunable anyway (glibc drops it in secure-execution mode) does not
/// re-execute itself again.
pub use sync_config::SYNC_ALLOCATOR_REEXECUTED as REEXECUTED;

/// `current` (the value of `GLIBC_TUNABLES`, if any) with the threshold added,
/// or `None` when it sets the threshold already.
///
/// ```
/// use sync_http::allocator::tunables_with_threshold;
/// assert_eq!(
///     tunables_with_threshold(None).as_deref(),
///     Some("glibc.malloc.mmap_threshold=131072")
/// );
/// assert_eq!(tunables_with_threshold(Some("glibc.malloc.mmap_threshold=65536")), None);
/// ```
pub fn tunables_with_threshold(current: Option<&str>) -> Option<String> {
    let ours = format!("{MMAP_THRESHOLD_TUNABLE}={MMAP_THRESHOLD_BYTES}");
    match current.map(str::trim).filter(|c| !c.is_empty()) {
        None => Some(ours),
        Some(c)
            if c.split(':')
                .any(|t| t.split('=').next().map(str::trim) == Some(MMAP_THRESHOLD_TUNABLE)) =>
        {
            None
        }
        Some(c) => Some(format!("{c}:{ours}")),
    }
}

/// What [`ensure_mmap_threshold`] found.
#[derive(Debug)]
pub enum Tuning {
    /// The environment sets the threshold (ours or the operator's).
    Set,
    /// Not on glibc: nothing to set.
    NotGlibc,
    /// The process was re-executed with the tunable and still lacks it.
    Lost,
    /// Re-executing failed: the process runs with glibc's default.
    Failed(std::io::Error),
}

/// Returns when the process has the threshold; otherwise re-executes it with
/// the threshold (and does not return), or says why it could not.
pub fn ensure_mmap_threshold() -> Tuning {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return Tuning::NotGlibc;
    }
    let current = std::env::var(GLIBC_TUNABLES).ok();
    let Some(tunables) = tunables_with_threshold(current.as_deref()) else {
        return Tuning::Set;
    };
    if std::env::var_os(REEXECUTED).is_some() {
        return Tuning::Lost;
    }
    Tuning::Failed(reexecute(&tunables))
}

#[cfg(unix)]
fn reexecute(tunables: &str) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("function"));
    std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env(GLIBC_TUNABLES, tunables)
        .env(REEXECUTED, "1")
        .exec()
}

#[cfg(not(unix))]
fn reexecute(_: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::Unsupported, "not on Unix")
}

impl Tuning {
    /// Logs what it means (once logging is set up).
    pub fn log(&self) {
        match self {
            Self::Set | Self::NotGlibc => {}
            Self::Lost => tracing::warn!(
                tunable = MMAP_THRESHOLD_TUNABLE,
                "glibc ignored GLIBC_TUNABLES: freed memory may stay resident and resident memory may exceed the memory budget"
            ),
            Self::Failed(e) => tracing::warn!(
                tunable = MMAP_THRESHOLD_TUNABLE,
                error = %e,
                "could not re-execute with GLIBC_TUNABLES set: freed memory may stay resident and resident memory may exceed the memory budget"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_added_to_other_tunables_and_an_operators_value_is_kept() {
        assert_eq!(
            tunables_with_threshold(Some("glibc.malloc.arena_max=2")).as_deref(),
            Some("glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=131072")
        );
        assert_eq!(
            tunables_with_threshold(Some("  ")).as_deref(),
            Some("glibc.malloc.mmap_threshold=131072")
        );
        assert_eq!(
            tunables_with_threshold(Some(
                "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=1048576"
            )),
            None
        );
        // A name that only starts like ours is another tunable.
        assert!(tunables_with_threshold(Some("glibc.malloc.mmap_threshold_x=1")).is_some());
    }
}
