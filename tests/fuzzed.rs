//! Every input the fuzzers kept (`fuzz/corpus/TARGET/`), replayed through the same
//! whole-input harness the fuzz targets run (`fuzz/src/lib.rs`): what once was found stays
//! fixed, and CI runs this short pass without a nightly toolchain. `fuzz/README.md` says how
//! to fuzz for longer.

#[path = "../fuzz/src/lib.rs"]
mod whole;

fn replay(target: &str) {
    let run = whole::target(target).unwrap_or_else(|| panic!("no target {target}"));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "{}: a corpus of {} files",
        dir.display(),
        files.len()
    );
    for file in files {
        let data = std::fs::read(&file).unwrap();
        // A failure names the input: `cargo fuzz run TARGET FILE` runs it alone.
        eprintln!("{target}: {}", file.display());
        run(&data);
    }
}

#[test]
fn folder_corpus() {
    replay("folder");
}

#[test]
fn request_corpus() {
    replay("request");
}

#[test]
fn smtp_corpus() {
    replay("smtp");
}
