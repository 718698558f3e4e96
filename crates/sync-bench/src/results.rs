//! A run's results (one JSON object per measured run, JSON lines) grouped by
//! part and case, with the median of each figure over the runs.

use anyhow::{Context, Result};
use serde_json::{Map, Value};

/// One part and case with all its runs: `old: …` and `new: …` cases are the
/// two binaries compared.
#[derive(Debug, Clone)]
pub struct Case {
    pub item: String,
    pub case: String,
    pub runs: Vec<Map<String, Value>>,
}

impl Case {
    /// The median over runs of a figure.
    pub fn median(&self, metric: &str) -> Option<f64> {
        let mut v: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|r| r.get(metric)?.as_f64())
            .collect();
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        match v.len() {
            0 => None,
            n if n % 2 == 0 => Some((v[mid - 1] + v[mid]) / 2.0),
            _ => Some(v[mid]),
        }
    }
}

/// Groups result lines by (item, case), in order of first appearance.
///
/// # Errors
/// When a non-empty line is not a JSON object with `item` and `case`.
pub fn group(raw: &str) -> Result<Vec<Case>> {
    let mut cases: Vec<Case> = Vec::new();
    for (n, line) in raw
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let runs: Vec<Map<String, Value>> =
            vec![serde_json::from_str(line).with_context(|| format!("line {}", n + 1))?];
        let text = |k: &str| Some(runs[0].get(k)?.as_str()?.to_string());
        let (Some(item), Some(case)) = (text("item"), text("case")) else {
            anyhow::bail!("line {} has no item and case", n + 1);
        };
        match cases.iter_mut().find(|c| c.item == item && c.case == case) {
            Some(c) => c.runs.extend(runs),
            None => cases.push(Case { item, case, runs }),
        }
    }
    Ok(cases)
}

/// The median of `metric` in `item` for `which` (`old` or `new`) and `case`.
pub fn figure(cases: &[Case], item: &str, which: &str, case: &str, metric: &str) -> Option<f64> {
    let name = format!("{which}: {case}");
    cases
        .iter()
        .find(|c| c.item == item && c.case == name)?
        .median(metric)
}

/// A number for people: no decimals from 100 up, one from 10, two below.
pub fn num(x: f64) -> String {
    match x.abs() {
        _ if x.fract() == 0.0 => format!("{x:.0}"),
        a if a >= 100.0 => format!("{x:.0}"),
        a if a >= 10.0 => format!("{x:.1}"),
        _ => format!("{x:.2}"),
    }
}
