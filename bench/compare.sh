#!/usr/bin/env bash
# Benchmark two builds against each other: a change must not make a tool slower. Runs
# mdeliver.sh, msubmit.sh and mreceive.sh ROUNDS times for each build, the two builds taking
# turns in every round (so a change in the machine's load hits both alike), and prints the
# median of each figure for each build and the ratio after/before. Not a test.
#   usage: bench/compare.sh BEFORE_DIR AFTER_DIR [ROUNDS=3]
#   Each DIR holds release builds of mdeliver, msubmit and mreceive (e.g. a copy of
#   target/release from the commit before the change). Smaller runs than `make bench`
#   (mdeliver 1000, msubmit 500, mreceive 10 x 1000), so three rounds take minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 BEFORE_DIR AFTER_DIR [ROUNDS]" >&2; exit 64; }
BEFORE=$(cd "$1" && pwd); AFTER=$(cd "$2" && pwd); ROUNDS=${3:-3}
OUT=$(mktemp -d /tmp/mp-compare.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

one() { # build-name dir round
  local name=$1 dir=$2 r=$3 f="$OUT/$1.$3"
  MDELIVER=$dir/mdeliver bash bench/mdeliver.sh 1000 2 >"$f.mdeliver" 2>&1
  MSUBMIT=$dir/msubmit bash bench/msubmit.sh 500 >"$f.msubmit" 2>&1
  BIN=$dir bash bench/mreceive.sh 10 1000 >"$f.mreceive" 2>&1
}
for r in $(seq "$ROUNDS"); do
  one before "$BEFORE" "$r"
  one after "$AFTER" "$r"
done

# figure NAME FILE-SUFFIX AWK-PROGRAM: one number per round and build.
figure() {
  local label=$1 suffix=$2 prog=$3 b a
  b=$(for r in $(seq "$ROUNDS"); do awk "$prog" "$OUT/before.$r.$suffix"; done | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  a=$(for r in $(seq "$ROUNDS"); do awk "$prog" "$OUT/after.$r.$suffix"; done | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  awk -v l="$label" -v b="$b" -v a="$a" 'BEGIN {printf "  %-28s %10.1f %10.1f %8.2fx\n", l, b, a, (b > 0 ? a / b : 0)}'
}
echo "median of $ROUNDS rounds, msgs/s:"
printf '  %-28s %10s %10s %9s\n' figure before after ratio
figure "mdeliver" mdeliver '$1 == "mdeliver" && $3 ~ /x$/ {print $2}'
figure "msubmit one-shot" msubmit '/msubmit \(release\)/ {print $(NF-1)}'
figure "msubmit --queue" msubmit '/msubmit --queue/ {print $(NF-1)}'
figure "msubmit --flush" msubmit '/msubmit --flush/ {print $(NF-1)}'
figure "mreceive (built-in)" mreceive '$1 == "mreceive" && NF == 3 {print $2}'
figure "mreceive -> mdeliver" mreceive '$1 == "mreceive-mdeliver" && NF == 3 {print $2}'
