#[test]
fn ui_new() {
    trybuild::TestCases::new().compile_fail("tests/ui/values/crate_wrong_path.rs");
}
