#!/usr/bin/env bash
# Benchmark: Postfix's smtp-source sends SESSIONS parallel sessions x PER messages of 2 KiB,
# each session reusing its connection (-d), to one recipient, into
#   mreceive (built-in Maildir delivery, --listen),
#   mreceive -> mdeliver (a process per message, MAILDIR from --maildir-base),
#   Postfix -> virtual(8) -> Maildir (tests/peers/start-postfix.sh; timed until every message
#     is in the Maildir, since Postfix says 250 when it has queued, not delivered),
#   smtp-sink (accepts and discards: the ceiling of the client and the loopback),
# all in one run; prints messages/second and the ratio of each to mreceive's built-in delivery.
# Not a test: figures depend on the machine (2 cores, shared). Needs root for Postfix.
#   usage: bench/mreceive.sh [SESSIONS=20] [PER=5000]
#   env:   BIN=/abs/dir with release mreceive and mdeliver (default: cargo build --release)
#          BENCH_DIR=DIR (default: a new dir in /var/tmp)
# Durability is the same everywhere but smtp-sink: mreceive and mdeliver fsync the file and
# new/ before the 250 (or exit 0); Postfix fsyncs its queue file before 250 and virtual(8)
# fsyncs the Maildir file.
# Measured here (2 shared cores, ext4 on virtio, 20 x 5000, 29 Nov 2026): mreceive 3348/s,
# mreceive -> mdeliver 809/s (0.24x), Postfix 927/s (0.28x), smtp-sink 23470/s (7.0x).
set -euo pipefail
cd "$(dirname "$0")/.."
SESSIONS=${1:-20}
PER=${2:-5000}
N=$((SESSIONS * PER))
for v in "$SESSIONS" "$PER"; do
  [[ "$v" =~ ^[0-9]+$ && "$v" -gt 0 ]] || { echo "usage: $0 [SESSIONS] [PER]" >&2; exit 64; }
done
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --quiet --bin mreceive --bin mdeliver
  BIN=$PWD/target/release
fi
for c in /usr/sbin/smtp-source /usr/sbin/smtp-sink python3; do
  command -v "$c" >/dev/null || { echo "$0: $c missing (tests/peers/install.sh)" >&2; exit 69; }
done

D=${BENCH_DIR:-$(mktemp -d /var/tmp/mailpipe-bench.XXXXXX)}
mkdir -p "$D"; chmod 755 "$D"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  bash tests/peers/stop.sh "$D/peers" >/dev/null 2>&1 || true
  rm -rf "$D"
}
trap cleanup EXIT
echo "mreceive benchmark: $SESSIONS sessions x $PER messages = $N, 2 KiB each, into $D"

now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1:$2" >&2; exit 1
}
count() { find "$1/new" "$1/cur" -type f 2>/dev/null | wc -l; }
declare -A RATE
rate() { python3 -c "print(f'{$N / ($2 - $1):.0f}')"; }
source_to() { # ADDR PORT
  /usr/sbin/smtp-source -d -s "$SESSIONS" -m "$N" -l 2048 -f a@sender.test \
    -t alice@bench.test "$1:$2" 
}
# run NAME ADDR PORT MAILDIR: send everything, then wait until MAILDIR holds all N.
run() {
  local name=$1 addr=$2 port=$3 md=$4 t0 t1 got
  t0=$(now)
  source_to "$addr" "$port"
  if [ -n "$md" ]; then
    for _ in $(seq 6000); do
      got=$(count "$md"); [ "$got" -ge "$N" ] && break; sleep 0.1
    done
    got=$(count "$md")
    [ "$got" -eq "$N" ] || { echo "$name: $got messages stored, expected $N" >&2; exit 1; }
  fi
  t1=$(now)
  RATE[$name]=$(rate "$t0" "$t1")
  printf '%-22s %8s msgs/s\n' "$name" "${RATE[$name]}"
}

# mreceive, built-in delivery.
P=$(free_port)
# Its log goes to a file, as Postfix's below does (maillog_file), not to the terminal.
"$BIN/mreceive" -l "127.0.0.1:$P" -d bench.test -m "$D/builtin" --max-sessions 200 \
  2>>"$D/mreceive.log" &
PIDS+=($!); wait_port 127.0.0.1 "$P"
run mreceive "127.0.0.1" "$P" "$D/builtin/alice/Maildir"

# mreceive -> mdeliver, a process per message.
P=$(free_port)
"$BIN/mreceive" -l "127.0.0.1:$P" -d bench.test -m "$D/viamdeliver" \
  -c "$BIN/mdeliver --no-rules" --max-sessions 200 2>>"$D/mreceive.log" &
PIDS+=($!); wait_port 127.0.0.1 "$P"
run mreceive-mdeliver "127.0.0.1" "$P" "$D/viamdeliver/alice/Maildir"

# Postfix -> virtual(8) -> Maildir.
if [ "$(id -u)" -eq 0 ] && command -v postfix >/dev/null; then
  P=$(free_port)
  mkdir -p "$D/peers"
  MAIL_BASE="$D/peers/mail" bash tests/peers/start-postfix.sh "$D/peers" bench "127.0.0.1:$P" bench.test >/dev/null
  run postfix "127.0.0.1" "$P" "$D/peers/mail/alice/Maildir"
  bash tests/peers/stop.sh "$D/peers" >/dev/null 2>&1 || true
else
  echo "postfix: skipped (needs root and postfix)"
fi

# smtp-sink: the ceiling.
P=$(free_port)
mkdir -p "$D/sink"
if [ "$(id -u)" -eq 0 ]; then SINK_USER=(-u nobody); else SINK_USER=(); fi
/usr/sbin/smtp-sink "${SINK_USER[@]}" "127.0.0.1:$P" 200 &
PIDS+=($!); wait_port 127.0.0.1 "$P"
run smtp-sink "127.0.0.1" "$P" ""

printf '\n%-22s %10s %14s\n' target msgs/s vs-mreceive
for t in mreceive mreceive-mdeliver postfix smtp-sink; do
  [ -n "${RATE[$t]:-}" ] || continue
  printf '%-22s %10s %14s\n' "$t" "${RATE[$t]}" \
    "$(python3 -c "print(f'{${RATE[$t]} / ${RATE[mreceive]}:.2f}x')")"
done
