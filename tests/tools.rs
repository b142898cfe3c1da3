//! The Python tools' plain parts (no torch): their unit tests, run with the system python3.

use std::process::Command;

use crate::util::repo;

/// `python3 -m unittest` in tools/: the exporters' reading of a checkpoint's saved feature
/// extractor and AudioSet's label table (issue 25, items 4 and 5).
#[test]
fn tools_unit_tests_pass() {
    let out = Command::new("python3")
        .args(["-B", "-m", "unittest", "-v", "test_tools"])
        .current_dir(repo("tools"))
        .output()
        .expect("python3 runs (CI machines have CPython 3)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("OK"), "{err}");
}
