//! The compile-fail suite: each `tests/ui/<group>/<case>.rs` must fail to compile with exactly
//! the diagnostics in its `.stderr` snapshot (toolchain 1.95). Regenerate with
//! `TRYBUILD=overwrite cargo test --test ui`, then read every changed snapshot.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*/*.rs");
}
