#!/usr/bin/env bash
# Run the fuzz targets (issue 13) with cargo-afl (AFL++), each for SECS seconds, one at a time.
#   usage: fuzz/run.sh SECS [TARGET...]      (from anywhere; every target when none is named)
# Installs cargo-afl and builds AFL++'s runtime when missing (CI's fresh machine: needs
# crates.io, make and cc). Corpora and findings go to fuzz/out/TARGET/ (kept between runs:
# AFL resumes). Prints one line per target (executions, corpus, crashes, hangs) and exits
# 1 when a target crashed: each crash input then belongs in fuzz/regressions/TARGET/ with its
# fix (src/fuzz.rs replays them under `cargo test`).
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:?usage: fuzz/run.sh SECS [TARGET...]}
shift
AFL_VERSION=0.18.2
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo afl --version >/dev/null 2>&1; then
  cargo install cargo-afl --version "$AFL_VERSION" --locked
fi
# Builds AFL++ once per rustc; says so (and fails) when it was built already.
if ! out=$(cargo afl config --build 2>&1) && ! grep -q 'already built' <<<"$out"; then
  echo "$out" >&2
  exit 1
fi
# Its own target directory: instrumented builds must not replace the crate's.
export CARGO_TARGET_DIR="$PWD/target"
cargo afl build --release --locked --quiet
# AFL checks the machine before it starts: core dumps piped to a handler (Debian's
# systemd-coredump, a container's) and CPU frequency scaling it cannot read make it refuse.
# Neither matters for finding crashes in a parser; no CPU binding on a shared machine.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
export AFL_NO_UI=1 AFL_AUTORESUME=1 AFL_FAST_CAL=1 AFL_QUIET=1
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(cd src/bin && ls *.rs | sed 's/\.rs$//'))
crashed=0
for t in "${targets[@]}"; do
  mkdir -p out
  # -t 1000+: an input over a second is a hang (reported, not fatal: a loaded machine
  # makes those); seeds that slow are skipped rather than stopping the run.
  nice -n 10 cargo afl fuzz -V "$SECS" -t 1000+ -i "seeds/$t" -o "out/$t" "target/release/$t" \
    >"out/$t.log" 2>&1 || { tail -20 "out/$t.log" >&2; echo "fuzz: $t: afl-fuzz failed" >&2; exit 1; }
  stats="out/$t/default/fuzzer_stats"
  get() { sed -n "s/^$1 *: //p" "$stats"; }
  crashes=$(get saved_crashes)
  echo "fuzz: $t: $(get execs_done) execs in $(get run_time) s, corpus $(get corpus_count), crashes $crashes, hangs $(get saved_hangs)"
  if [ "$crashes" != 0 ]; then
    crashed=1
    echo "fuzz: $t: crash inputs in fuzz/out/$t/default/crashes/ (replay: fuzz/target/release/$t < FILE)" >&2
  fi
done
exit $crashed
