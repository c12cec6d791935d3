//! Group 7: the build time of a crate of annotated functions vs the same crate without the
//! attribute, for `cargo build` (debug) and `cargo check`, in CPU time (what the compiler
//! spends, whatever else the machine runs) and in wall time.
//!
//! Two generated packages share one workspace and one target folder: `with` holds `functions`
//! async fns under `#[resilient(timeout = "2s", retries = 3, breaker = "…", fallback = …)]` (the
//! issue's own example), `without` the same functions and fallbacks, unannotated; both box
//! every function's future in one method, so both compile the bodies. A warm-up
//! build compiles the dependencies (`resilient`, its macro crate, tokio, …) once; then each
//! package is rebuilt alone, `REPS` times, after touching its source, and the medians compared.
//! Incremental compilation is off, so each rebuild compiles the whole crate.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::report::{Group, Unit, median};

/// Timed builds of each package and command; the median is reported.
const REPS: usize = 3;

/// What one cargo command cost.
#[derive(Debug, Clone, Copy)]
struct Cost {
    wall: f64,
    /// User + system time of cargo and the compilers it waited for.
    cpu: f64,
}

/// Generates the two packages under `dir`, builds and checks them and returns the group.
pub fn measure(dir: &Path, functions: usize) -> Result<Group, String> {
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("resilient")
        .canonicalize()
        .map_err(|e| format!("the `resilient` crate next to the benches: {e}"))?;
    generate(dir, &runtime, functions).map_err(|e| format!("generating the crates: {e}"))?;

    let mut group = Group::new(
        7,
        format!("Compile time: {functions} async fns, the crate alone (debug profile)"),
        Unit::Seconds,
    );
    group.ratios = false;
    let mut ratios = Vec::new();
    for command in ["build", "check"] {
        // Dependencies first, so that the timed runs compile the generated code alone.
        cargo(dir, command, "without")?;
        cargo(dir, command, "with")?;
        let mut costs: [Vec<Cost>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..REPS {
            for (package, costs) in ["without", "with"].into_iter().zip(&mut costs) {
                touch(&dir.join(package).join("src").join("lib.rs"))?;
                costs.push(cargo(dir, command, package)?);
            }
        }
        let [without, with] = costs.map(|costs| {
            let mut cpu: Vec<f64> = costs.iter().map(|c| c.cpu).collect();
            let mut wall: Vec<f64> = costs.iter().map(|c| c.wall).collect();
            cpu.sort_by(f64::total_cmp);
            wall.sort_by(f64::total_cmp);
            (median(&cpu), median(&wall))
        });
        for (package, (cpu, wall), what) in [
            ("without", without, "without the attribute"),
            (
                "with",
                with,
                "with `#[resilient(timeout = \"2s\", retries = 3, breaker = \"…\", fallback = …)]`",
            ),
        ] {
            group.push(
                &format!("{command}_cpu_{package}"),
                format!("`cargo {command}`, CPU time (user + sys), {what}"),
                cpu,
            );
            group.push(
                &format!("{command}_wall_{package}"),
                format!("`cargo {command}`, wall time, {what}"),
                wall,
            );
        }
        ratios.push(format!(
            "`cargo {command}` with ÷ without: CPU {:.2}×, wall {:.2}×",
            with.0 / without.0,
            with.1 / without.1
        ));
    }
    group.notes.push(ratios.join("; ") + ".");
    group.notes.push(format!(
        "Median of {REPS} rebuilds each (incremental compilation off, so each compiles the whole \
         crate), after a warm-up build of the dependencies; CPU time is the user + system time \
         of cargo and the compilers it waited for (`getrusage(RUSAGE_CHILDREN)`). Generated under \
         `{}`.",
        dir.display()
    ));
    Ok(group)
}

fn generate(dir: &Path, runtime: &Path, functions: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("Cargo.toml"),
        "[workspace]\nmembers = [\"with\", \"without\"]\nresolver = \"3\"\n",
    )?;
    for (package, annotated) in [("with", true), ("without", false)] {
        let src = dir.join(package).join("src");
        std::fs::create_dir_all(&src)?;
        std::fs::write(
            dir.join(package).join("Cargo.toml"),
            format!(
                "[package]\nname = \"{package}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
                 publish = false\n\n[dependencies]\nresilient = {{ path = {:?} }}\n",
                runtime.display().to_string()
            ),
        )?;
        std::fs::write(src.join("lib.rs"), source(functions, annotated))?;
    }
    Ok(())
}

/// The crate's source: an error type, and `functions` async fns with their fallbacks.
pub fn source(functions: usize, annotated: bool) -> String {
    let mut out = String::from(
        "//! Generated by the `resilient` benchmarks (compile-time group).\n\n\
         #[derive(Debug)]\npub enum Error {\n    Down,\n    Rejected(resilient::Rejection),\n}\n\n\
         impl From<resilient::Rejection> for Error {\n    \
         fn from(rejection: resilient::Rejection) -> Self {\n        \
         Error::Rejected(rejection)\n    }\n}\n\n\
         pub struct Service {\n    pub base: u64,\n}\n\nimpl Service {\n",
    );
    for i in 0..functions {
        if annotated {
            let _ = writeln!(
                out,
                "    #[resilient::resilient(timeout = \"2s\", retries = 3, breaker = \"dependency_{}\", \
                 fallback = Self::fallback_{i})]",
                i % 10
            );
        }
        let _ = writeln!(
            out,
            "    pub async fn call_{i}(&self, key: &str, n: u64) -> Result<u64, Error> {{\n        \
             if key.is_empty() {{\n            return Err(Error::Down);\n        }}\n        \
             Ok(self.base + n * {i})\n    }}\n\n    \
             pub fn fallback_{i}(&self, _key: &str, _n: u64, _error: Error) -> Result<u64, Error> {{\n        \
             Ok(self.base)\n    }}\n"
        );
    }
    // Every future is built and boxed, as an application calling them would, so that both
    // crates compile the functions' bodies (an unused async fn is barely compiled at all).
    out.push_str(
        "\n    pub fn calls<'a>(&'a self, key: &'a str) -> Vec<std::pin::Pin<Box<dyn \
         std::future::Future<Output = Result<u64, Error>> + Send + 'a>>> {\n        vec![\n",
    );
    for i in 0..functions {
        let _ = writeln!(out, "            Box::pin(self.call_{i}(key, {i})),");
    }
    out.push_str("        ]\n    }\n}\n");
    out
}

fn touch(path: &Path) -> Result<(), String> {
    // Rewriting the file changes its modification time, which is what cargo looks at.
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs `cargo <command> -p <package>` in the generated workspace and returns its cost.
fn cargo(dir: &Path, command: &str, package: &str) -> Result<Cost, String> {
    let cargo = std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
    let cpu_before = children_cpu_seconds();
    let started = Instant::now();
    let output = Command::new(cargo)
        .args([command, "--quiet", "-p", package])
        .current_dir(dir)
        // Our own target folder, whatever the bench run was given.
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env("CARGO_INCREMENTAL", "0")
        .env_remove("RUSTFLAGS")
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = children_cpu_seconds() - cpu_before;
    if !output.status.success() {
        return Err(format!(
            "`cargo {command} -p {package}` failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(Cost { wall, cpu })
}

/// User + system seconds of every child process waited for so far (and of the children they
/// waited for): cargo's, and through cargo the compilers'.
#[allow(unsafe_code)]
fn children_cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` writes one `rusage` through the pointer, which points to memory of
    // that type and size owned by this frame; `RUSAGE_CHILDREN` is a valid `who`.
    let status = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(
        status, 0,
        "getrusage(RUSAGE_CHILDREN) cannot fail with valid arguments"
    );
    // SAFETY: `getrusage` returned 0, so it filled the whole struct (and it started zeroed).
    let usage = unsafe { usage.assume_init() };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_sources_differ_only_by_the_attribute() {
        let with = source(3, true);
        let without = source(3, false);
        let stripped: String = with
            .lines()
            .filter(|line| !line.contains("#[resilient::resilient("))
            .map(|line| format!("{line}\n"))
            .collect();
        assert_eq!(stripped, without);
        assert_eq!(with.matches("#[resilient::resilient(").count(), 3);
    }

    #[test]
    fn a_child_process_cpu_time_is_counted_once_it_is_waited_for() {
        let before = children_cpu_seconds();
        // A child that burns some CPU: a shell loop.
        let status = Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .status()
            .expect("sh runs");
        assert!(status.success());
        let spent = children_cpu_seconds() - before;
        assert!(spent > 0.0, "the child's CPU time shows: {spent}");
    }
}
