//! Every group of issue 5 in one run: `cargo bench` in this folder runs them all and prints the
//! medians, the ratios within each group and the targets. Name groups to run only those:
//! `cargo bench -- closed open` (groups: closed, macro, tower, open, contention, memory,
//! compile, tracing, registry, family, futures).

use std::path::PathBuf;
use std::time::Duration;

use criterion::Criterion;
use resilient_benches::alloc::CountingAlloc;
use resilient_benches::report::{self, Group, Target};
use resilient_benches::{compile_time, groups, registry};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const GROUPS: [&str; 11] = [
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

    let mut results: Vec<Group> = Vec::new();
    if run("closed") {
        results.push(groups::closed(&mut c, &criterion_dir, &rt));
    }
    if run("macro") {
        results.push(groups::macro_entries::macro_group(
            &mut c,
            &criterion_dir,
            &rt,
        ));
    }
    if run("tower") {
        results.push(groups::tower_stack(
            &mut c,
            &criterion_dir,
            &rt,
            groups::macro_entries::TOWER_ENTRIES,
        ));
    }
    if run("open") {
        results.push(groups::open(
            &mut c,
            &criterion_dir,
            &rt,
            groups::macro_entries::OPEN_ENTRIES,
        ));
    }
    if run("contention") {
        results.push(groups::contention(Duration::from_millis(300), 7));
    }
    if run("memory") {
        results.push(groups::memory());
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
        results.push(groups::tracing_cost(&mut c, &criterion_dir, &rt));
    }
    if run("compile") {
        match compile_time::measure(&out.join("compile-time"), 200) {
            Ok(group) => results.push(group),
            Err(error) => eprintln!("compile-time group failed: {error}"),
        }
    }

    let targets = targets(&results);
    let summary = report::markdown(&results, &targets);
    println!("\n## Summary (medians of this run)\n\n{summary}");
    let path = out.join("summary.md");
    match std::fs::write(&path, &summary) {
        Ok(()) => println!("(also written to {})", path.display()),
        Err(error) => eprintln!("could not write {}: {error}", path.display()),
    }
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
        "200 annotated functions build ≤ 1.5× without the attribute",
        ratio(v(7, "with"), v(7, "without")),
        1.5,
        false,
    ));
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
