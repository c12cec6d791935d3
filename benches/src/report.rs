//! Collects each group's medians and prints them, with the ratios between the entries of each
//! group and the targets, as Markdown (so the run's output can go into BENCHMARKS.md
//! as it is).

use std::fmt::Write as _;
use std::path::Path;

/// What a group's values measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Nanoseconds per call (median).
    Nanos,
    /// Calls per second.
    PerSecond,
    /// Bytes.
    Bytes,
    /// Seconds.
    Seconds,
}

impl Unit {
    /// `value` in this unit, for a person to read.
    pub fn format(self, value: f64) -> String {
        match self {
            Unit::Nanos if value >= 10_000.0 => format!("{:.1} µs", value / 1_000.0),
            Unit::Nanos if value >= 100.0 => format!("{value:.0} ns"),
            Unit::Nanos => format!("{value:.2} ns"),
            Unit::PerSecond => format!("{:.1} M/s", value / 1e6),
            Unit::Bytes if value.abs() >= 1024.0 * 1024.0 => {
                format!("{:.1} MiB", value / (1024.0 * 1024.0))
            }
            Unit::Bytes => format!("{value:.0} B"),
            Unit::Seconds => format!("{value:.2} s"),
        }
    }
}

/// One measured entry of a group.
#[derive(Debug, Clone)]
pub struct Entry {
    /// A short key, used to look the entry up (and as criterion's benchmark id).
    pub id: String,
    /// What a reader sees.
    pub label: String,
    /// The median, in the group's unit.
    pub value: f64,
}

/// One group of the issue: entries measured in the same run, so their ratios are meaningful.
#[derive(Debug, Clone)]
pub struct Group {
    /// The group number.
    pub number: u8,
    /// What it compares.
    pub title: String,
    /// The unit of every entry.
    pub unit: Unit,
    /// The entries, in the order measured.
    pub entries: Vec<Entry>,
    /// Remarks printed under the table (the configuration compared, for instance).
    pub notes: Vec<String>,
}

impl Group {
    /// An empty group.
    pub fn new(number: u8, title: impl Into<String>, unit: Unit) -> Self {
        Group {
            number,
            title: title.into(),
            unit,
            entries: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds an entry.
    pub fn push(&mut self, id: &str, label: impl Into<String>, value: f64) {
        self.entries.push(Entry {
            id: id.to_owned(),
            label: label.into(),
            value,
        });
    }

    /// The value of entry `id`, if it was measured.
    pub fn get(&self, id: &str) -> Option<f64> {
        self.entries.iter().find(|e| e.id == id).map(|e| e.value)
    }
}

/// One of the targets, as measured.
#[derive(Debug, Clone)]
pub struct Target {
    /// The target number (the group it is measured in).
    pub number: u8,
    /// The target, as the issue states it.
    pub text: String,
    /// What this run measured.
    pub measured: String,
    /// Whether it was met; `None` when it could not be measured in this run.
    pub met: Option<bool>,
}

impl Target {
    /// A target `measured ≤ limit` (or `≥` when `at_least`), stating the measured ratio.
    pub fn ratio(number: u8, text: &str, ratio: Option<f64>, limit: f64, at_least: bool) -> Self {
        let met = ratio.map(|r| if at_least { r >= limit } else { r <= limit });
        Target {
            number,
            text: text.to_owned(),
            measured: ratio.map_or_else(|| "not measured".to_owned(), |r| format!("{r:.2}×")),
            met,
        }
    }
}

/// The median time per iteration criterion measured for `group/id`, in nanoseconds.
pub fn criterion_median(root: &Path, group: &str, id: &str) -> Option<f64> {
    let path = root.join(group).join(id).join("new").join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// The run's summary as Markdown: one table per group with every pairwise ratio, then the
/// targets.
pub fn markdown(groups: &[Group], targets: &[Target]) -> String {
    let mut out = String::new();
    for group in groups {
        let _ = writeln!(out, "### {}. {}\n", group.number, group.title);
        let letters: Vec<char> = ('a'..='z').take(group.entries.len()).collect();
        let _ = write!(out, "| | entry | median |");
        for letter in &letters {
            let _ = write!(out, " ÷ ({letter}) |");
        }
        let _ = write!(out, "\n|---|---|---:|");
        for _ in &letters {
            let _ = write!(out, "---:|");
        }
        out.push('\n');
        for (row, letter) in group.entries.iter().zip(&letters) {
            let _ = write!(
                out,
                "| ({letter}) | {} | {} |",
                row.label,
                group.unit.format(row.value)
            );
            for column in &group.entries {
                let ratio = row.value / column.value;
                let _ = write!(out, " {ratio:.2} |");
            }
            out.push('\n');
        }
        for note in &group.notes {
            let _ = writeln!(out, "\n{note}");
        }
        out.push('\n');
    }
    if !targets.is_empty() {
        let _ = writeln!(out, "### Targets\n");
        let _ = writeln!(out, "| # | target | measured | |\n|---|---|---|---|");
        for target in targets {
            let verdict = match target.met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "not measured",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {verdict} |",
                target.number, target.text, target.measured
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_every_pairwise_ratio() {
        let mut group = Group::new(1, "demo", Unit::Nanos);
        group.push("a", "fast", 2.0);
        group.push("b", "slow", 8.0);
        let text = markdown(&[group], &[]);
        assert!(
            text.contains("| (a) | fast | 2.00 ns | 1.00 | 0.25 |"),
            "{text}"
        );
        assert!(
            text.contains("| (b) | slow | 8.00 ns | 4.00 | 1.00 |"),
            "{text}"
        );
    }

    #[test]
    fn targets_say_met_or_missed() {
        let met = Target::ratio(1, "≤ 3×", Some(2.5), 3.0, false);
        let missed = Target::ratio(5, "≥ 1.7×", Some(1.2), 1.7, true);
        let text = markdown(&[], &[met, missed]);
        assert!(text.contains("| 1 | ≤ 3× | 2.50× | met |"), "{text}");
        assert!(
            text.contains("| 5 | ≥ 1.7× | 1.20× | **missed** |"),
            "{text}"
        );
    }
}
