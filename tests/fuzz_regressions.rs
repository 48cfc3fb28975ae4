//! Replays every saved fuzz input (`tests/regressions/<target>/*`) through its fuzz target:
//! each once made that target fail, and must now pass its checks without a panic.

#[allow(dead_code)]
#[path = "../examples/fuzz/targets.rs"]
mod targets;

use std::path::Path;

#[test]
fn every_saved_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut replayed = 0;
    let mut failures = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap().filter_map(|e| e.ok()) {
        if !dir.path().is_dir() {
            continue;
        }
        let name = dir.file_name().to_string_lossy().into_owned();
        let target = targets::find(&name)
            .unwrap_or_else(|| panic!("tests/regressions/{name}: no fuzz target of that name"));
        for file in std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
        {
            let input = std::fs::read(file.path()).unwrap();
            if std::panic::catch_unwind(|| (target.run)(&input)).is_err() {
                failures.push(file.path().display().to_string());
            }
            replayed += 1;
        }
    }
    println!("replayed {replayed} saved fuzz inputs");
    assert!(failures.is_empty(), "still failing: {failures:?}");
}

#[test]
fn the_fuzz_targets_accept_trivial_inputs() {
    // Empty and one-byte inputs for every target: the smallest cases the fuzzer starts from.
    for target in targets::TARGETS {
        for input in [&b""[..], &b"\0"[..], &b"\xff\xff"[..]] {
            (target.run)(input);
        }
    }
}
