//! Every group of issue 5 in one run: `cargo bench` in this folder runs them all and prints the
//! medians, the ratios within each group and the targets. Name groups to run only those:
//! `cargo bench -- closed open` (groups: closed, macro, tower, open, contention, memory,
//! compile, tracing, registry, family, futures, scaling, first-call).
//!
//! `RESILIENT_BENCH_RUNS=3` runs the chosen groups three times in a row and reports each entry
//! as the minimum and the median over the runs (a void run of a group is left out).

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::Criterion;
use resilient_benches::alloc::CountingAlloc;
use resilient_benches::report::{self, Group, Target};
use resilient_benches::{compile_time, first_call, groups, registry, scaling};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const GROUPS: [&str; 13] = [
    "closed",
    "macro",
    "tower",
    "open",
    "contention",
    "memory",
    "compile",
    "tracing",
    "registry",
    "family",
    "futures",
    "scaling",
    "first-call",
];

fn main() {
    // `cargo bench` passes `--bench`; anything else not starting with `-` names a group.
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    for name in &chosen {
        assert!(
            GROUPS.contains(&name.as_str()),
            "unknown group `{name}`; the groups are {GROUPS:?}"
        );
    }
    let run = |name: &str| chosen.is_empty() || chosen.iter().any(|c| c == name);

    let out = out_dir();
    let criterion_dir = out.join("criterion");
    // Only this run's estimates may feed the summary.
    let _ = std::fs::remove_dir_all(&criterion_dir);
    std::fs::create_dir_all(&criterion_dir).expect("the output folder can be created");
    let mut c = Criterion::default()
        .output_directory(&criterion_dir)
        .without_plots()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    let rt = groups::runtime();

    let repeats = runs();
    let load_before = load_average();
    let mut all_runs: Vec<Vec<Group>> = Vec::new();
    for index in 0..repeats {
        if repeats > 1 {
            eprintln!("== run {} of {repeats} ==", index + 1);
        }
        report::set_run(index + 1);
        all_runs.push(run_groups(&run, &mut c, &criterion_dir, &rt, &out));
    }
    let results = if repeats > 1 {
        report::combine(&all_runs)
    } else {
        all_runs.pop().unwrap_or_default()
    };

    let mut targets = targets(&results);
    // Only the targets of the groups that ran.
    targets.retain(|t| results.iter().any(|g| g.number == t.number));
    let header = header(repeats, load_before, load_average());
    let summary = format!("{header}\n{}", report::markdown(&results, &targets));
    let title = if repeats > 1 {
        format!("min and median of {repeats} runs")
    } else {
        "medians of this run".to_owned()
    };
    println!("\n## Summary ({title})\n\n{summary}");
    let path = out.join("summary.md");
    match std::fs::write(&path, &summary) {
        Ok(()) => println!("(also written to {})", path.display()),
        Err(error) => eprintln!("could not write {}: {error}", path.display()),
    }
}

/// One run of every chosen group, in the usual order.
fn run_groups(
    run: &dyn Fn(&str) -> bool,
    c: &mut Criterion,
    criterion_dir: &Path,
    rt: &tokio::runtime::Runtime,
    out: &Path,
) -> Vec<Group> {
    let mut results: Vec<Group> = Vec::new();
    if run("closed") {
        results.push(groups::closed(c, criterion_dir, rt));
    }
    if run("macro") {
        results.push(groups::macro_entries::macro_group(c, criterion_dir, rt));
    }
    if run("tower") {
        results.push(groups::tower_stack(
            c,
            criterion_dir,
            rt,
            groups::macro_entries::TOWER_ENTRIES,
        ));
    }
    if run("open") {
        results.push(groups::open(
            c,
            criterion_dir,
            rt,
            groups::macro_entries::OPEN_ENTRIES,
        ));
    }
    if run("contention") {
        results.push(groups::contention(Duration::from_millis(300), 7));
    }
    if run("scaling") {
        results.push(scaling::scaling(Duration::from_millis(300), 5));
    }
    if run("memory") {
        results.push(groups::memory());
    }
    if run("first-call") {
        results.push(first_call::memory());
    }
    if run("registry") {
        results.push(registry::memory());
        results.push(registry::snapshot_latency(100_000, 20));
    }
    if run("family") {
        results.push(resilient_benches::family::memory());
    }
    if run("futures") {
        results.push(groups::macro_entries::future_sizes());
    }
    if run("tracing") {
        results.push(groups::tracing_cost(c, criterion_dir, rt));
    }
    if run("compile") {
        match compile_time::measure(&out.join("compile-time"), 200) {
            Ok(group) => results.push(group),
            Err(error) => eprintln!("compile-time group failed: {error}"),
        }
    }
    results
}

/// `RESILIENT_BENCH_RUNS`, at least 1.
fn runs() -> usize {
    match std::env::var("RESILIENT_BENCH_RUNS") {
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => panic!("RESILIENT_BENCH_RUNS must be a whole number ≥ 1, not `{text}`"),
        },
        Err(_) => 1,
    }
}

/// The machine the figures come from.
fn header(repeats: usize, load_before: Option<String>, load_after: Option<String>) -> String {
    let cpu = cpu_model().unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = match (load_before, load_after) {
        (Some(before), Some(after)) => {
            format!("; load average (1, 5, 15 min) {before} at the start, {after} at the end")
        }
        _ => String::new(),
    };
    format!("Machine: {cpu}, {cores} hardware threads available; {repeats} run(s){load}.\n")
}

/// The CPU's model name, from `/proc/cpuinfo` (Linux).
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}

/// The first three fields of `/proc/loadavg` (Linux).
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    (fields.len() == 3).then(|| fields.join(", "))
}

/// Where results go: `$RESILIENT_BENCH_OUT`, or `resilient-bench` in the target folder.
fn out_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RESILIENT_BENCH_OUT") {
        return PathBuf::from(dir);
    }
    // The executable sits in `<target>/release/deps/`.
    let exe = std::env::current_exe().expect("the bench executable's path");
    exe.ancestors().nth(3).map_or_else(
        || PathBuf::from("resilient-bench"),
        |t| t.join("resilient-bench"),
    )
}

fn value(results: &[Group], group: u8, id: &str) -> Option<f64> {
    results
        .iter()
        .find(|g| g.number == group)
        .and_then(|g| g.get(id))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

/// The targets, each computed from this run's figures.
fn targets(results: &[Group]) -> Vec<Target> {
    let v = |group: u8, id: &str| value(results, group, id);
    let ours = v(1, "resilient");
    let fetch_add = v(1, "fetch_add");
    let mut targets = vec![
        Target::ratio(
            1,
            "closed success ≤ 0.7× recloser",
            ratio(ours, v(1, "recloser")),
            0.7,
            false,
        ),
        Target::ratio(
            1,
            "closed success ≤ 0.2× failsafe",
            ratio(ours, v(1, "failsafe")),
            0.2,
            false,
        ),
        Target::ratio(
            1,
            "closed success ≤ 3× one `fetch_add`",
            ratio(ours, fetch_add),
            3.0,
            false,
        ),
    ];
    let added = v(2, "attr_breaker")
        .zip(v(2, "plain"))
        .map(|(attributed, plain)| attributed - plain);
    targets.push(Target::ratio(
        2,
        "`#[resilient(breaker = …)]` adds ≤ 3× one `fetch_add` to a ready call",
        ratio(added, v(2, "fetch_add").or(fetch_add)),
        3.0,
        false,
    ));
    // The attribute where it works; the programmatic policy it expands to otherwise.
    let full = v(3, "attr_full").or(v(3, "resilient_policy"));
    let full_what = if v(3, "attr_full").is_some() {
        "full attribute"
    } else {
        "full policy (programmatic; attribute not measured)"
    };
    targets.push(Target::ratio(
        3,
        &format!("{full_what} ≤ 1.0× the tower stack"),
        ratio(full, v(3, "tower_stack")),
        1.0,
        false,
    ));
    targets.push(Target::ratio(
        3,
        &format!("{full_what} ≤ 0.3× tower-resilience's breaker alone"),
        ratio(full, v(3, "tower_resilience")),
        0.3,
        false,
    ));
    let rejection = v(4, "attr_fallback").or(v(4, "resilient_policy_fallback"));
    let rejection_what = if v(4, "attr_fallback").is_some() {
        "attribute"
    } else {
        "programmatic policy; attribute not measured"
    };
    targets.push(Target::ratio(
        4,
        &format!("rejection with fallback ({rejection_what}) ≤ 1.5× one `Instant::now()`"),
        ratio(rejection, v(4, "instant_now")),
        1.5,
        false,
    ));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    targets.push(Target::ratio(
        5,
        "2 threads ≥ 1.7× one thread",
        ratio(v(5, "resilient_2"), v(5, "resilient_1")),
        1.7,
        true,
    ));
    if cores >= 16 {
        targets.push(Target::ratio(
            5,
            &format!("{cores} threads ≥ 8× one thread"),
            ratio(v(5, &format!("resilient_{cores}")), v(5, "resilient_1")),
            8.0,
            true,
        ));
    }
    let per_breaker = v(6, "resilient_declared");
    targets.push(Target {
        number: 6,
        text: "≤ 512 bytes per declared breaker (count window of 100)".to_owned(),
        measured: per_breaker.map_or("not measured".to_owned(), |b| format!("{b:.0} B")),
        met: per_breaker.map(|b| b <= 512.0),
    });
    let all = v(6, "resilient_100k");
    targets.push(Target {
        number: 6,
        text: "100 000 breakers ≤ 64 MiB".to_owned(),
        measured: all.map_or("not measured".to_owned(), |b| {
            format!("{:.1} MiB", b / (1024.0 * 1024.0))
        }),
        met: all.map(|b| b <= 64.0 * 1024.0 * 1024.0),
    });
    targets.push(Target::ratio(
        7,
        "200 annotated functions: `cargo build` (debug) CPU time ≤ 2.5× without the attribute",
        ratio(v(7, "build_cpu_with"), v(7, "build_cpu_without")),
        2.5,
        false,
    ));
    targets.push(Target::ratio(
        7,
        "200 annotated functions: `cargo check` CPU time ≤ 2.0× without the attribute",
        ratio(v(7, "check_cpu_with"), v(7, "check_cpu_without")),
        2.0,
        false,
    ));
    targets.push(Target::ratio(
        7,
        "200 annotated functions: `cargo build` (debug) wall time ≤ 1.5× without the attribute",
        ratio(v(7, "build_wall_with"), v(7, "build_wall_without")),
        1.5,
        false,
    ));
    scaling_targets(results, &mut targets);
    first_call_targets(results, &mut targets);
    for (id, text) in [
        (
            "refused_1m",
            "1 000 000 refused names retain ≈ 0 bytes (≤ 4 KiB)",
        ),
        (
            "evicted_1m",
            "1 000 000 created-then-removed names retain ≈ 0 bytes (≤ 4 KiB)",
        ),
    ] {
        let retained = v(9, id);
        targets.push(Target {
            number: 9,
            text: text.to_owned(),
            measured: retained.map_or("not measured".to_owned(), |b| format!("{b:.0} B")),
            met: retained.map(|b| b <= 4096.0),
        });
    }
    let lookups = v(9, "lookup_allocations");
    targets.push(Target {
        number: 9,
        text: "a lookup of an existing name allocates nothing".to_owned(),
        measured: lookups.map_or("not measured".to_owned(), |n| {
            format!("{n:.0} allocations in 1 000 000 lookups")
        }),
        met: lookups.map(|n| n == 0.0),
    });
    let hold = v(10, "copy_shard");
    targets.push(Target {
        number: 10,
        text: "a lookup during a snapshot of 100 000 breakers waits < 1 ms: the longest lock a \
               snapshot holds (one shard's copy) < 1 ms"
            .to_owned(),
        measured: hold.map_or("not measured".to_owned(), |ns| {
            format!("{:.3} ms", ns / 1e6)
        }),
        met: hold.map(|ns| ns < 1e6),
    });
    let lookup = v(10, "lookup_max");
    let control = v(10, "lookup_control_max");
    targets.push(Target {
        number: 10,
        text: "… and the longest lookup timed while snapshots run < 1 ms (needs a core per thread)"
            .to_owned(),
        measured: lookup.map_or("not measured".to_owned(), |ns| {
            let control = control.map_or(String::new(), |c| {
                format!("; control without snapshots {:.3} ms", c / 1e6)
            });
            format!("{:.3} ms{control}", ns / 1e6)
        }),
        met: lookup.map(|ns| ns < 1e6),
    });
    targets
}

/// Issue 9's scaling targets, from group 13 (void runs give none).
fn scaling_targets(results: &[Group], targets: &mut Vec<Target>) {
    let v = |id: &str| value(results, 13, id);
    let Some(group) = results.iter().find(|g| g.number == 13) else {
        return;
    };
    if let Some(reason) = &group.void {
        targets.push(Target {
            number: 13,
            text: "scaling targets".to_owned(),
            measured: format!("void: {reason}"),
            met: None,
        });
        return;
    }
    let cores = scaling::thread_counts().last().copied().unwrap_or(1);
    for (key, what) in [
        ("time_window", "time window"),
        ("failure_count", "failure count within a time"),
        ("consecutive", "consecutive failures"),
    ] {
        targets.push(Target::ratio(
            13,
            &format!("{what}: 2 threads ≥ 1.7× one thread"),
            ratio(v(&format!("{key}_2")), v(&format!("{key}_1"))),
            1.7,
            true,
        ));
        if cores >= 16 {
            targets.push(Target::ratio(
                13,
                &format!("{what}: {cores} threads ≥ 8× one thread"),
                ratio(v(&format!("{key}_{cores}")), v(&format!("{key}_1"))),
                8.0,
                true,
            ));
        }
    }
    let shared = ratio(v("shared_2"), v("shared_1"));
    let count = ratio(v("count_window_2"), v("count_window_1"));
    targets.push(Target {
        number: 13,
        text: "count window: 2 threads ÷ 1 ≥ the shared `fetch_add`'s ratio".to_owned(),
        measured: match (count, shared) {
            (Some(count), Some(shared)) => format!("{count:.2}× vs {shared:.2}×"),
            _ => "not measured".to_owned(),
        },
        met: count.zip(shared).map(|(count, shared)| count >= shared),
    });
}

/// Issue 9's memory target, from group 14.
fn first_call_targets(results: &[Group], targets: &mut Vec<Target>) {
    for (key, _, _) in scaling::breakers() {
        let bytes = value(results, 14, &format!("{key}_one"));
        targets.push(Target {
            number: 14,
            text: format!("{key}: ≤ 512 B once called from one thread"),
            measured: bytes.map_or("not measured".to_owned(), |b| format!("{b:.0} B")),
            met: bytes.map(|b| b <= 512.0),
        });
    }
}
