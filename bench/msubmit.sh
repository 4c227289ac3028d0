#!/usr/bin/env bash
# bench/msubmit.sh: one-shot submissions per second, msubmit against msmtp, in one run.
#
#   bash bench/msubmit.sh [COUNT=1000]
#
# Starts one smtp-sink on 127.0.0.1 (loopback only) and sends COUNT messages of ~1 KiB, one
# process per message as cron and scripts do, first with our release msubmit, then with
# msmtp, both in clear text to the same sink. Then queues COUNT messages and times one
# `msubmit --flush` sending them all over one connection. Prints messages/second and ratios.
# Needs: target/release/msubmit (cargo build --release), msmtp, /usr/sbin/smtp-sink.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
BIN=${MSUBMIT:-target/release/msubmit}
[ -x "$BIN" ] || { echo "bench: build first: cargo build --release --bin msubmit" >&2; exit 1; }
command -v msmtp >/dev/null || { echo "bench: msmtp is not installed" >&2; exit 1; }
[ -x /usr/sbin/smtp-sink ] || { echo "bench: smtp-sink (postfix) is not installed" >&2; exit 1; }

W=$(mktemp -d /tmp/mp-bench.XXXXXX)
chmod 777 "$W"
SINK_PID=""
cleanup() { [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
USER_OPT=(); [ "$(id -u)" = 0 ] && USER_OPT=(-u nobody)
# Every message is appended to one dump file; each starts with an X-Client-Addr: line.
/usr/sbin/smtp-sink "${USER_OPT[@]}" -D "$W/all.dump" "127.0.0.1:$PORT" 256 >/dev/null 2>&1 &
SINK_PID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done

MSG="$W/message"
{
  printf 'From: bench@example.test\nTo: sink@example.test\nSubject: benchmark\n'
  printf 'Date: Sun, 29 Nov 2026 12:00:00 +0000\nMessage-ID: <bench@example.test>\n\n'
  for i in $(seq 14); do printf 'line %02d of a small benchmark message body, about seventy bytes\n' "$i"; done
} >"$MSG"

cat >"$W/msmtprc" <<EOF
account default
host 127.0.0.1
port $PORT
tls off
auth off
from bench@example.test
EOF
chmod 600 "$W/msmtprc"

count() { grep -c '^X-Client-Addr:' "$W/all.dump" 2>/dev/null || echo 0; }
now() { date +%s.%N; }
rate() { python3 -c "print(f'{$1/($3-$2):.1f}')"; }

run_msubmit() {
  local i
  for ((i = 0; i < N; i++)); do
    "$BIN" --host 127.0.0.1 --port "$PORT" --tls none -i -f bench@example.test sink@example.test <"$MSG"
  done
}
run_msmtp() {
  local i
  for ((i = 0; i < N; i++)); do
    msmtp -C "$W/msmtprc" -i sink@example.test <"$MSG"
  done
}

before=$(count); t0=$(now); run_msubmit; t1=$(now); after=$(count)
[ $((after - before)) -eq "$N" ] || { echo "bench: msubmit delivered $((after - before)) of $N" >&2; exit 1; }
MS=$(rate "$N" "$t0" "$t1")

before=$(count); t0=$(now); run_msmtp; t1=$(now); after=$(count)
[ $((after - before)) -eq "$N" ] || { echo "bench: msmtp delivered $((after - before)) of $N" >&2; exit 1; }
MM=$(rate "$N" "$t0" "$t1")

Q="$W/queue"
t0=$(now)
for ((i = 0; i < N; i++)); do "$BIN" --queue-dir "$Q" --queue -i -f bench@example.test sink@example.test <"$MSG"; done
t1=$(now)
MQ=$(rate "$N" "$t0" "$t1")
before=$(count); t0=$(now)
"$BIN" --queue-dir "$Q" --flush --host 127.0.0.1 --port "$PORT" --tls none
t1=$(now); after=$(count)
[ $((after - before)) -eq "$N" ] || { echo "bench: flush delivered $((after - before)) of $N" >&2; exit 1; }
MF=$(rate "$N" "$t0" "$t1")

echo "$N messages of $(wc -c <"$MSG") bytes to smtp-sink on 127.0.0.1, one process per message:"
printf '  %-34s %10s msgs/s\n' "msubmit (release)" "$MS" "msmtp $(msmtp --version | head -1 | awk '{print $3}')" "$MM"
printf '  %-34s %10s msgs/s\n' "msubmit --queue (durable, fsync)" "$MQ" "msubmit --flush (one connection)" "$MF"
python3 - "$MS" "$MM" "$MF" <<'EOF'
import sys
ms, mm, mf = map(float, sys.argv[1:])
print(f"ratios: msubmit/msmtp one-shot = {ms/mm:.1f}x, flush/msmtp = {mf/mm:.1f}x, flush/one-shot msubmit = {mf/ms:.1f}x")
EOF
