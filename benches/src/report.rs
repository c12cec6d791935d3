//! Collects each group's medians and prints them, with the ratios between the entries of each
//! group and the targets, as Markdown (so the run's output can go into BENCHMARKS.md
//! as it is).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    /// The median, in the group's unit (over the runs, in a repeated run).
    pub value: f64,
    /// The smallest of the runs' figures, in a repeated run.
    pub min: Option<f64>,
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
    /// Whether the table shows every pairwise ratio (off for groups of unrelated entries).
    pub ratios: bool,
    /// Why this run's figures are not figures (a control that did not behave); a void group
    /// shows no table and feeds no target.
    pub void: Option<String>,
    /// How many runs the figures are taken over (1 unless repeated).
    pub runs: usize,
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
            ratios: true,
            void: None,
            runs: 1,
        }
    }

    /// Adds an entry.
    pub fn push(&mut self, id: &str, label: impl Into<String>, value: f64) {
        self.entries.push(Entry {
            id: id.to_owned(),
            label: label.into(),
            value,
            min: None,
        });
    }

    /// The value of entry `id`, if it was measured (never, in a void group).
    pub fn get(&self, id: &str) -> Option<f64> {
        if self.void.is_some() {
            return None;
        }
        self.entries.iter().find(|e| e.id == id).map(|e| e.value)
    }
}

/// Folds the groups of several runs of the same groups into one group each: every entry's
/// median and minimum over the runs that were not void. A group void in every run stays void,
/// with each run's reason.
pub fn combine(runs: &[Vec<Group>]) -> Vec<Group> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|template| {
            let same: Vec<&Group> = runs
                .iter()
                .filter_map(|run| run.iter().find(|g| g.number == template.number))
                .collect();
            combine_group(template, &same)
        })
        .collect()
}

fn combine_group(template: &Group, runs: &[&Group]) -> Group {
    let mut out = Group::new(template.number, template.title.clone(), template.unit);
    out.ratios = template.ratios;
    out.runs = runs.len();
    let valid: Vec<&Group> = runs.iter().copied().filter(|g| g.void.is_none()).collect();
    for (index, run) in runs.iter().enumerate() {
        if let Some(reason) = &run.void {
            out.notes.push(format!(
                "Run {} of {} is void: {reason}",
                index + 1,
                runs.len()
            ));
        }
    }
    if valid.is_empty() {
        out.void = Some(format!("every one of the {} runs was void", runs.len()));
        return out;
    }
    out.runs = valid.len();
    if valid.len() < runs.len() {
        out.notes.push(format!(
            "The figures below come from the {} run(s) of {} that were not void.",
            valid.len(),
            runs.len()
        ));
    }
    for entry in &template.entries {
        let mut values: Vec<f64> = valid.iter().filter_map(|g| g.get(&entry.id)).collect();
        if values.is_empty() {
            continue;
        }
        values.sort_by(f64::total_cmp);
        out.entries.push(Entry {
            id: entry.id.clone(),
            label: entry.label.clone(),
            value: median(&values),
            min: Some(values[0]),
        });
    }
    // A note every run wrote alike is said once; notes that differ (figures) are said per run.
    let longest = valid.iter().map(|g| g.notes.len()).max().unwrap_or(0);
    for index in 0..longest {
        let notes: Vec<Option<&String>> = valid.iter().map(|g| g.notes.get(index)).collect();
        if notes.iter().all(|n| *n == notes[0]) {
            out.notes.extend(notes[0].cloned());
        } else {
            for (run, note) in notes.iter().enumerate() {
                if let Some(note) = note {
                    out.notes
                        .push(format!("Run {} of {}: {note}", run + 1, valid.len()));
                }
            }
        }
    }
    out
}

/// The median of sorted `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
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
    let path = root
        .join(group)
        .join(criterion_dir_name(id, current_run()))
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// Which run of a repeated invocation is measuring, from 1 (see [`set_run`]).
static RUN: AtomicUsize = AtomicUsize::new(1);

/// Says which run of a repeated invocation (`RESILIENT_BENCH_RUNS`) the groups measure now, so
/// that each run reads its own criterion estimates.
pub fn set_run(run: usize) {
    RUN.store(run.max(1), Ordering::Relaxed);
}

fn current_run() -> usize {
    RUN.load(Ordering::Relaxed)
}

/// Where criterion keeps an entry's estimates: an id measured again in the same process gets
/// `_2`, `_3`, … (criterion's own suffix for a repeated id), so run n reads `id_n`.
fn criterion_dir_name(id: &str, run: usize) -> String {
    if run <= 1 {
        id.to_owned()
    } else {
        format!("{id}_{run}")
    }
}

/// The run's summary as Markdown: one table per group with every pairwise ratio, then the
/// targets.
pub fn markdown(groups: &[Group], targets: &[Target]) -> String {
    let mut out = String::new();
    for group in groups {
        group_table(&mut out, group);
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

fn group_table(out: &mut String, group: &Group) {
    let _ = writeln!(out, "### {}. {}\n", group.number, group.title);
    if let Some(reason) = &group.void {
        let _ = writeln!(out, "**Void** (no figure from this group): {reason}\n");
        for note in &group.notes {
            let _ = writeln!(out, "{note}\n");
        }
        return;
    }
    let repeated = group.runs > 1;
    let letters: Vec<char> = ('a'..='z').take(group.entries.len()).collect();
    let _ = write!(out, "| | entry |");
    if repeated {
        let _ = write!(out, " min | median of {} runs |", group.runs);
    } else {
        let _ = write!(out, " median |");
    }
    if group.ratios {
        for letter in &letters {
            let _ = write!(out, " ÷ ({letter}) |");
        }
    }
    let _ = write!(
        out,
        "\n|---|---|{}---:|",
        if repeated { "---:|" } else { "" }
    );
    if group.ratios {
        for _ in &letters {
            let _ = write!(out, "---:|");
        }
    }
    out.push('\n');
    for (row, letter) in group.entries.iter().zip(&letters) {
        let _ = write!(out, "| ({letter}) | {} |", row.label);
        if repeated {
            let min = row.min.map_or_else(String::new, |m| group.unit.format(m));
            let _ = write!(out, " {min} |");
        }
        let _ = write!(out, " {} |", group.unit.format(row.value));
        if group.ratios {
            for column in &group.entries {
                let ratio = row.value / column.value;
                let _ = write!(out, " {ratio:.2} |");
            }
        }
        out.push('\n');
    }
    if repeated && group.ratios {
        let _ = writeln!(out, "\nRatios are between the medians.");
    }
    for note in &group.notes {
        let _ = writeln!(out, "\n{note}");
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_run_reads_the_estimates_criterion_wrote_for_it() {
        let root = std::env::temp_dir().join(format!("resilient-bench-{}", std::process::id()));
        for (dir, median) in [("entry", 10.0), ("entry_2", 20.0), ("entry_3", 30.0)] {
            let new = root.join("g").join(dir).join("new");
            std::fs::create_dir_all(&new).unwrap();
            let json = format!("{{\"median\": {{\"point_estimate\": {median}}}}}");
            std::fs::write(new.join("estimates.json"), json).unwrap();
        }
        let medians: Vec<_> = (1..=3)
            .map(|run| {
                set_run(run);
                criterion_median(&root, "g", "entry")
            })
            .collect();
        set_run(1);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(medians, [Some(10.0), Some(20.0), Some(30.0)]);
    }

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

    fn run(values: &[(&str, f64)], void: Option<&str>) -> Vec<Group> {
        let mut group = Group::new(5, "demo", Unit::Nanos);
        for (id, value) in values {
            group.push(id, *id, *value);
        }
        group.void = void.map(str::to_owned);
        vec![group]
    }

    #[test]
    fn repeated_runs_give_min_and_median_and_skip_void_runs() {
        let runs = [
            run(&[("a", 3.0), ("b", 10.0)], None),
            run(&[("a", 1.0), ("b", 30.0)], None),
            run(
                &[("a", 100.0), ("b", 100.0)],
                Some("the control did not scale"),
            ),
            run(&[("a", 2.0), ("b", 20.0)], None),
        ];
        let combined = combine(&runs);
        let group = &combined[0];
        assert_eq!(group.runs, 3);
        assert_eq!(group.get("a"), Some(2.0));
        assert_eq!(group.entries[0].min, Some(1.0));
        assert_eq!(group.get("b"), Some(20.0));
        assert_eq!(group.entries[1].min, Some(10.0));
        let text = markdown(&combined, &[]);
        assert!(text.contains("| min | median of 3 runs |"), "{text}");
        assert!(
            text.contains("| (a) | a | 1.00 ns | 2.00 ns | 1.00 | 0.10 |"),
            "{text}"
        );
        assert!(
            text.contains("Run 3 of 4 is void: the control did not scale"),
            "{text}"
        );
    }

    #[test]
    fn a_group_void_in_every_run_shows_no_figure() {
        let runs = [
            run(&[("a", 3.0)], Some("control 1.1×")),
            run(&[("a", 4.0)], Some("control 1.2×")),
        ];
        let combined = combine(&runs);
        assert_eq!(combined[0].get("a"), None);
        let text = markdown(&combined, &[]);
        assert!(text.contains("**Void**"), "{text}");
        assert!(!text.contains("3.00 ns"), "{text}");
    }
}
