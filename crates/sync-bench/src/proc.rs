//! Reading `/proc`: a process's memory and CPU time.

/// `(VmRSS, VmHWM)` of `pid` in KiB: resident now, and its peak.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        let line = status.lines().find_map(|l| l.strip_prefix(name))?;
        line.trim().trim_end_matches("kB").trim().parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// `(pgrp, utime + stime)` in clock ticks from a `/proc/PID/stat` line.
fn stat_fields(stat: &str) -> Option<(u32, u64)> {
    // The command name is in parentheses and may contain spaces.
    let fields = stat.get(stat.rfind(')')? + 1..)?;
    let f: Vec<&str> = fields.split_whitespace().collect();
    let ticks = |i: usize| f.get(i)?.parse::<u64>().ok();
    Some((f.get(2)?.parse().ok()?, ticks(11)? + ticks(12)?))
}

/// CPU time (user + system) used so far, in seconds, by `pid:N` (one
/// process) or `pgid:N` (every process of a group: an emulator is gcloud's
/// wrapper and its JVM); `None` when the spec is neither.
pub fn cpu_s(spec: &str) -> Option<f64> {
    let (kind, n) = spec.split_once(':')?;
    let n: u32 = n.parse().ok()?;
    let stat = |path: std::path::PathBuf| stat_fields(&std::fs::read_to_string(path).ok()?);
    let ticks: u64 = match kind {
        "pid" => stat(format!("/proc/{n}/stat").into()).map_or(0, |(_, t)| t),
        "pgid" => std::fs::read_dir("/proc")
            .ok()?
            .filter_map(|e| stat(e.ok()?.path().join("stat")))
            .filter_map(|(group, t)| (group == n).then_some(t))
            .sum(),
        _ => return None,
    };
    // Linux reports these in USER_HZ, 100 per second on x86 and Arm.
    Some(ticks as f64 / 100.0)
}

/// `KEY=VALUE`.
pub fn pair(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or(format!("{s:?}: expected KEY=VALUE"))?;
    Ok((k.to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_memory_and_cpu_time_of_a_process_and_its_group() {
        let line = "4242 (java (emu)) S 1 4240 4240 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 30 0";
        assert_eq!(stat_fields(line), Some((4240, 300)));
        let me = std::process::id();
        assert!(rss_kib(me).is_some_and(|(rss, hwm)| rss > 0 && hwm >= rss));
        let own = std::fs::read_to_string("/proc/self/stat").expect("stat");
        let (group, _) = stat_fields(&own).expect("own line");
        let (alone, all) = (cpu_s(&format!("pid:{me}")), cpu_s(&format!("pgid:{group}")));
        assert!(all >= alone && alone.is_some(), "the group includes us");
        assert_eq!(
            cpu_s(&format!("pid:{}", u32::MAX)),
            Some(0.0),
            "no such process"
        );
        assert_eq!(cpu_s("7"), None);
    }
}
