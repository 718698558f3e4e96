//! The memory limit of the container the process runs in: the one of the
//! cgroup it is in, as the kernel enforces it (cgroup v2 `memory.max`, v1
//! `memory.limit_in_bytes`), or `MEMORY_LIMIT_MIB` when set
//! ([`MemoryLimit::resolve`]).
//!
//! The process's cgroup is read from `/proc/self/cgroup`; its limit, and its
//! ancestors' (the lowest one binds), under `/sys/fs/cgroup`. Inside a
//! container with its own cgroup namespace the path is `/` and the file is
//! `/sys/fs/cgroup/memory.max`. "max" (v2), or v1's huge "no limit" number,
//! means no limit there. Everything is read through a function, so the
//! parsing is tested without a cgroup file system.

use crate::config::RuntimeConfig;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Where cgroup file systems are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The process's cgroups.
pub const PROC_SELF_CGROUP: &str = "/proc/self/cgroup";
/// cgroup v2's limit file.
pub const V2_LIMIT_FILE: &str = "memory.max";
/// cgroup v1's limit file (in the `memory` controller's hierarchy).
pub const V1_LIMIT_FILE: &str = "memory.limit_in_bytes";
/// cgroup v1 writes "no limit" as the largest page-aligned counter (about
/// 2^63); anything from 2^60 bytes up is taken as no limit.
const V1_UNLIMITED_FROM: u64 = 1 << 60;

/// An instance's memory limit and where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimit {
    /// The limit, bytes.
    pub bytes: u64,
    /// Where it comes from.
    pub source: LimitSource,
}

/// Where a [`MemoryLimit`] was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSource {
    /// `MEMORY_LIMIT_MIB`.
    Setting,
    /// cgroup v2 `memory.max`.
    CgroupV2,
    /// cgroup v1 `memory.limit_in_bytes`.
    CgroupV1,
}

impl LimitSource {
    /// Stable name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Setting => sync_config::MEMORY_LIMIT_MIB,
            Self::CgroupV2 => "cgroup v2 memory.max",
            Self::CgroupV1 => "cgroup v1 memory.limit_in_bytes",
        }
    }
}

impl fmt::Display for LimitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl MemoryLimit {
    /// `MEMORY_LIMIT_MIB` when set (`setting_mib`), else the cgroup's limit;
    /// `None` when neither gives one.
    pub fn resolve(setting_mib: Option<u64>) -> Option<Self> {
        match setting_mib {
            Some(mib) => Some(Self {
                bytes: mib.saturating_mul(1024 * 1024),
                source: LimitSource::Setting,
            }),
            None => cgroup_limit(|p| std::fs::read_to_string(p)),
        }
    }
}

impl RuntimeConfig {
    /// The instance's memory limit: `MEMORY_LIMIT_MIB` when set, else the
    /// limit of the cgroup the process is in (read now), else `None`.
    pub fn memory_limit(&self) -> Option<MemoryLimit> {
        MemoryLimit::resolve(self.memory_limit_mib)
    }
}

/// One line of `/proc/self/cgroup`: `ID:CONTROLLERS:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLine {
    /// Hierarchy id (0 for v2).
    pub id: String,
    /// Comma-separated controllers (empty for v2).
    pub controllers: String,
    /// The cgroup's path in its hierarchy.
    pub path: String,
}

/// The lines of a `/proc/self/cgroup` text that have the expected form.
pub fn parse_proc_cgroup(text: &str) -> Vec<CgroupLine> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            Some(CgroupLine {
                id: parts.next()?.to_string(),
                controllers: parts.next()?.to_string(),
                path: parts.next()?.to_string(),
            })
        })
        .collect()
}

/// A limit file's value: `Some(bytes)`, or `None` for no limit ("max", v1's
/// huge number) or an unreadable value.
pub fn parse_limit(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "max" {
        return None;
    }
    text.parse::<u64>().ok().filter(|&n| n < V1_UNLIMITED_FROM)
}

/// `dir` and each of its ancestors up to `root`, deepest first.
fn with_ancestors(root: &Path, path: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut current = root.join(path.trim_start_matches('/'));
    loop {
        dirs.push(current.clone());
        if current == root || !current.pop() || !current.starts_with(root) {
            break;
        }
    }
    dirs
}

/// The lowest limit of the process's cgroup and its ancestors, reading files
/// through `read` (v2 first, then v1's `memory` controller).
pub fn cgroup_limit(read: impl Fn(&Path) -> io::Result<String>) -> Option<MemoryLimit> {
    let lines = parse_proc_cgroup(&read(Path::new(PROC_SELF_CGROUP)).ok()?);
    let root = Path::new(CGROUP_ROOT);
    let lowest = |dir_root: &Path, path: &str, file: &str| {
        with_ancestors(dir_root, path)
            .iter()
            .filter_map(|dir| read(&dir.join(file)).ok())
            .filter_map(|text| parse_limit(&text))
            .min()
    };
    if let Some(v2) = lines
        .iter()
        .find(|l| l.id == "0" && l.controllers.is_empty())
    {
        if let Some(bytes) = lowest(root, &v2.path, V2_LIMIT_FILE) {
            return Some(MemoryLimit {
                bytes,
                source: LimitSource::CgroupV2,
            });
        }
    }
    let v1 = lines
        .iter()
        .find(|l| l.controllers.split(',').any(|c| c == "memory"))?;
    let bytes = lowest(&root.join("memory"), &v1.path, V1_LIMIT_FILE)?;
    Some(MemoryLimit {
        bytes,
        source: LimitSource::CgroupV1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A file system of these files only.
    fn files(entries: &[(&str, &str)]) -> impl Fn(&Path) -> io::Result<String> {
        let map: HashMap<PathBuf, String> = entries
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect();
        move |p: &Path| {
            map.get(p)
                .cloned()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, p.display().to_string()))
        }
    }

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn v2_in_a_container_namespace_reads_the_root_memory_max() {
        let fs = files(&[
            ("/proc/self/cgroup", "0::/\n"),
            ("/sys/fs/cgroup/memory.max", "268435456\n"),
        ]);
        assert_eq!(
            cgroup_limit(fs),
            Some(MemoryLimit {
                bytes: 256 * MIB,
                source: LimitSource::CgroupV2
            })
        );
    }

    #[test]
    fn v2_takes_the_lowest_limit_of_the_cgroup_and_its_ancestors() {
        let fs = files(&[
            ("/proc/self/cgroup", "0::/system.slice/app.service\n"),
            (
                "/sys/fs/cgroup/system.slice/app.service/memory.max",
                "max\n",
            ),
            ("/sys/fs/cgroup/system.slice/memory.max", "536870912\n"),
        ]);
        assert_eq!(cgroup_limit(fs).map(|l| l.bytes), Some(512 * MIB));
    }

    #[test]
    fn v2_max_everywhere_is_no_limit() {
        let fs = files(&[
            ("/proc/self/cgroup", "0::/user.slice\n"),
            ("/sys/fs/cgroup/user.slice/memory.max", "max\n"),
        ]);
        assert_eq!(cgroup_limit(fs), None);
    }

    #[test]
    fn v1_reads_the_memory_controller_and_treats_its_huge_number_as_no_limit() {
        let proc = "12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n9:memory:/docker/abc\n1:name=systemd:/docker/abc\n";
        let limited = files(&[
            ("/proc/self/cgroup", proc),
            (
                "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
                "134217728\n",
            ),
        ]);
        assert_eq!(
            cgroup_limit(limited),
            Some(MemoryLimit {
                bytes: 128 * MIB,
                source: LimitSource::CgroupV1
            })
        );
        let unlimited = files(&[
            ("/proc/self/cgroup", proc),
            (
                "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
        ]);
        assert_eq!(cgroup_limit(unlimited), None);
    }

    #[test]
    fn hybrid_hosts_fall_back_to_v1_when_v2_has_no_memory_limit() {
        let fs = files(&[
            ("/proc/self/cgroup", "0::/\n7:memory:/\n"),
            ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "1073741824"),
        ]);
        assert_eq!(
            cgroup_limit(fs).map(|l| (l.bytes, l.source)),
            Some((1024 * MIB, LimitSource::CgroupV1))
        );
    }

    #[test]
    fn nothing_readable_is_no_limit() {
        assert_eq!(cgroup_limit(files(&[])), None);
        let fs = files(&[("/proc/self/cgroup", "garbage")]);
        assert_eq!(cgroup_limit(fs), None);
    }

    #[test]
    fn limit_values() {
        assert_eq!(parse_limit("max"), None);
        assert_eq!(parse_limit(" 1048576\n"), Some(MIB));
        assert_eq!(parse_limit("9223372036854771712"), None);
        assert_eq!(parse_limit("lots"), None);
    }

    #[test]
    fn the_setting_overrides_the_cgroup() {
        assert_eq!(
            MemoryLimit::resolve(Some(512)),
            Some(MemoryLimit {
                bytes: 512 * MIB,
                source: LimitSource::Setting
            })
        );
    }
}
