//! The README's Rust blocks are code that builds: each one must stand, line for line, in
//! `tests/readme_blocks.rs` (which compiles them in context) or in an example.

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The non-blank lines of `text`, without their indentation.
fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
}

/// The body of every block fenced with "```rust".
fn rust_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```rust") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "a ```rust block is never closed");
    blocks
}

fn compiled_sources() -> Vec<(String, String)> {
    let mut sources = vec![Path::new(ROOT).join("tests/readme_blocks.rs")];
    for entry in std::fs::read_dir(Path::new(ROOT).join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "rs") {
            sources.push(path);
        }
    }
    sources
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path.display().to_string(), text)
        })
        .collect()
}

fn contains_run(haystack: &[&str], needle: &[&str]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

#[test]
fn every_rust_block_of_the_readme_is_compiled() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let blocks = rust_blocks(&readme);
    assert!(blocks.len() >= 10, "found only {} blocks", blocks.len());
    let sources = compiled_sources();
    let missing: Vec<&String> = blocks
        .iter()
        .filter(|block| {
            let block = lines(block);
            !sources
                .iter()
                .any(|(_, text)| contains_run(&lines(text), &block))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "README blocks found in no compiled file (add them to tests/readme_blocks.rs):\n{}",
        missing
            .iter()
            .map(|block| block.as_str())
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
}

#[test]
fn the_checker_notices_a_block_that_is_nowhere() {
    let blocks = rust_blocks("text\n```rust\nlet surely_not_compiled = 42;\n```\n");
    let sources = compiled_sources();
    let block = lines(&blocks[0]);
    assert!(
        !sources
            .iter()
            .any(|(_, text)| contains_run(&lines(text), &block))
    );
}
