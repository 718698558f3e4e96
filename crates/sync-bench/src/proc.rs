//! Reading `/proc`: a process's memory and CPU time, the machine's busy time.

/// `(VmRSS, VmHWM)` of `pid` in KiB, or `None` when it cannot be read.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&status)
}

fn parse_status(status: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        status.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Whose CPU time to count: one process, or every process of a group (an
/// emulator: gcloud's wrapper and the JVM it starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuOf {
    /// One process.
    Pid(u32),
    /// Every process whose process group is this.
    Group(u32),
}

impl std::str::FromStr for CpuOf {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected pid:N or pgid:N");
        let (kind, n) = s.split_once(':').ok_or_else(bad)?;
        let n: u32 = n.parse().map_err(|_| bad())?;
        match kind {
            "pid" => Ok(Self::Pid(n)),
            "pgid" => Ok(Self::Group(n)),
            _ => Err(bad()),
        }
    }
}

/// `(pgrp, utime + stime)` in clock ticks from a `/proc/PID/stat` line.
fn stat_fields(stat: &str) -> Option<(u32, u64)> {
    // The command name is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let pgrp = f.get(2)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((pgrp, utime + stime))
}

/// CPU time (user + system) used so far, in clock ticks.
pub fn cpu_ticks(of: CpuOf) -> u64 {
    match of {
        CpuOf::Pid(pid) => std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| stat_fields(&s))
            .map_or(0, |(_, t)| t),
        CpuOf::Group(pgid) => std::fs::read_dir("/proc")
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .bytes()
                            .all(|b| b.is_ascii_digit())
                    })
                    .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
                    .filter_map(|s| stat_fields(&s))
                    .filter(|(g, _)| *g == pgid)
                    .map(|(_, t)| t)
                    .sum()
            })
            .unwrap_or(0),
    }
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when unknown).
pub fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// `(busy, total)` jiffies of the whole machine from `/proc/stat`.
pub fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = cpu
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_high_water_mark() {
        let status = "Name:\tsync-function\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_status(status), Some((10240, 20480)));
        assert_eq!(parse_status("Name: x\n"), None);
        assert!(rss_kib(std::process::id()).is_some());
    }

    #[test]
    fn reads_cpu_time_of_a_process_and_its_group() {
        let line = "4242 (java (emu)) S 1 4240 4240 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 30 0";
        assert_eq!(stat_fields(line), Some((4240, 300)));
        assert_eq!("pid:7".parse::<CpuOf>(), Ok(CpuOf::Pid(7)));
        assert_eq!("pgid:9".parse::<CpuOf>(), Ok(CpuOf::Group(9)));
        assert!("7".parse::<CpuOf>().is_err());
        let me = std::process::id();
        // Burn CPU until at least one tick is accounted to this process.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut x = 0u64;
        while cpu_ticks(CpuOf::Pid(me)) == 0 && std::time::Instant::now() < deadline {
            x = (0..100_000u64).fold(x, |a, b| a.wrapping_mul(31).wrapping_add(b));
        }
        std::hint::black_box(x);
        let own = cpu_ticks(CpuOf::Pid(me));
        assert!(own > 0, "this process used CPU");
        let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
        let (pgid, _) = stat_fields(&stat).expect("own stat line");
        assert!(
            cpu_ticks(CpuOf::Group(pgid)) >= own,
            "the group includes us"
        );
        assert_eq!(cpu_ticks(CpuOf::Pid(u32::MAX)), 0, "no such process");
        let (busy, total) = machine_jiffies().expect("/proc/stat");
        assert!(busy <= total);
    }
}
