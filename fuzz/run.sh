#!/usr/bin/env bash
# Run every cargo-fuzz target for SECONDS each (default 10), seeded from the
# conformance vectors, and print executions and findings per target.
#
#   bash fuzz/run.sh            # 10 s each: what CI runs
#   bash fuzz/run.sh 3600       # an hour each: the long run
#   bash fuzz/run.sh 60 dns_answer bundle_parse   # some targets only
#
# Needs the nightly toolchain and cargo-fuzz. Outside CI, when either is
# missing, it says so and what to run, and exits 0 (fuzzing is not part of
# `cargo test`). Under CI (CI=true) it installs them, and a crash fails.
# A crash leaves its input in fuzz/artifacts/<target>/; reproduce it with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/crash-...
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
seconds="${1:-10}"
shift || true
ci=false
case "${CI:-}" in ""|false|0) ;; *) ci=true ;; esac

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    if $ci; then
        rustup toolchain install nightly --profile minimal >&2
    else
        echo "fuzz: skipped: no nightly toolchain (rustup toolchain install nightly --profile minimal)"
        exit 0
    fi
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    if $ci; then
        cargo install cargo-fuzz --locked >&2
    else
        echo "fuzz: skipped: cargo-fuzz is not installed (cargo install cargo-fuzz --locked)"
        exit 0
    fi
fi

cd "$here/.."
python3 fuzz/seed_corpora.py
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi
cargo +nightly fuzz build --fuzz-dir fuzz -O >&2
failed=0
for t in "${targets[@]}"; do
    log="$(mktemp)"
    if cargo +nightly fuzz run --fuzz-dir fuzz -O "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        result="ok"
    else
        result="CRASH (input in fuzz/artifacts/$t/)"
        failed=1
        tail -40 "$log" >&2
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
    echo "fuzz: $t: ${runs:-?} executions in ${seconds} s: $result"
    rm -f "$log"
done
exit $failed
