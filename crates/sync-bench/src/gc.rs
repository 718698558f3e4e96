//! JVM pauses of the emulators, from their `-Xlog:gc` files: a stall of
//! every call to an emulator shows up here, not in our code.

/// Pauses in one GC log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pauses {
    /// Stop-the-world pauses.
    pub count: u64,
    /// Their total, ms.
    pub total_ms: f64,
    /// The longest, ms.
    pub max_ms: f64,
    /// Largest heap committed, MiB.
    pub max_heap_mib: f64,
}

/// Reads lines such as
/// `[28.404s][info][gc] GC(34) Pause Young (Normal) (G1 Evacuation Pause) 1407M->449M(2840M) 219.098ms`.
pub fn parse(log: &str) -> Pauses {
    let mut p = Pauses::default();
    for line in log.lines().filter(|l| l.contains(" Pause ")) {
        let Some(ms) = line
            .split_whitespace()
            .last()
            .and_then(|t| t.strip_suffix("ms"))
            .and_then(|t| t.parse::<f64>().ok())
        else {
            continue;
        };
        p.count += 1;
        p.total_ms += ms;
        p.max_ms = p.max_ms.max(ms);
        let committed = line
            .split_whitespace()
            .find(|t| t.contains("->"))
            .and_then(|t| t.rsplit_once('('))
            .and_then(|(_, c)| c.strip_suffix("M)"))
            .and_then(|c| c.parse::<f64>().ok());
        if let Some(c) = committed {
            p.max_heap_mib = p.max_heap_mib.max(c);
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_pauses_and_ignores_concurrent_phases() {
        let log = "[0.003s][info][gc] Using G1
[1.749s][info][gc] GC(3) Pause Young (Concurrent Start) (Metadata GC Threshold) 26M->11M(388M) 10.666ms
[1.749s][info][gc] GC(4) Concurrent Mark Cycle
[1.766s][info][gc] GC(4) Pause Remark 11M->11M(80M) 2.183ms
[1.773s][info][gc] GC(4) Concurrent Mark Cycle 23.435ms
[28.404s][info][gc] GC(34) Pause Young (Normal) (G1 Evacuation Pause) 1407M->449M(2840M) 219.098ms
";
        let p = parse(log);
        assert_eq!(p.count, 3);
        assert!((p.total_ms - 231.947).abs() < 1e-6);
        assert_eq!((p.max_ms, p.max_heap_mib), (219.098, 2840.0));
    }
}
