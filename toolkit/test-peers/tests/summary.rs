//! Runs last in `cargo test` (cargo orders test targets by package name,
//! and this package's name sorts after every `deepmail-*` one) and prints
//! one line per missing peer: how many tests it cost and the command that
//! installs it. Reads what `test_peers::require` recorded for this cargo
//! run, then clears it.

fn main() {
    let dir = test_peers::skip_dir();
    let skips = test_peers::recorded_skips(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    if skips.is_empty() {
        println!("peer tests: every real peer was there; nothing was skipped");
        return;
    }
    let total: usize = skips.iter().map(|(_, t)| t.len()).sum();
    println!(
        "peer tests: {total} skipped because a real peer is not installed (CI installs them all):"
    );
    for line in test_peers::summary_lines(&skips) {
        println!("  {line}");
    }
    println!("  or all at once: `bash scripts/peers/install-all.sh`");
}
