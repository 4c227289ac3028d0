#!/usr/bin/env bash
# Benchmark: N messages (2 KiB bodies, tests/peers/seed-maildir.sh) retrieved over POP3 from
#   maccess (--listen, built in release mode),
#   Dovecot's POP3 (tests/peers/start-dovecot.sh, same messages in its own Maildir),
# by a client that does no disk work of its own (Python's poplib, RETR of every message into
# memory, one session), all in one run; then mpop (delivery into a Maildir, keep on: nothing
# deleted) from each, the everyday view. Prints messages/second and maccess's ratio to Dovecot.
# Plain POP3 on loopback for both (USER/PASS, maccess with --insecure-auth, Dovecot with
# disable_plaintext_auth = no): the servers' work, not TLS's, is measured. Each server gets a
# first, untimed listing of the mailbox so that both start warm (Dovecot builds its index,
# maccess's page cache is filled). The poplib runs alternate between the servers, ROUNDS
# times, and the best of each is the figure (this machine's load swings a single run by 4x);
# the first round's is printed beside it: there maccess also moves every message from new/
# to cur/ with the seen flag, which later rounds find done.
# Not a test: figures depend on the machine (2 cores, shared). Needs root for Dovecot.
#   usage: bench/maccess.sh [N=2000] [ROUNDS=5]
#   env:   BIN=/abs/dir with a release maccess (default: cargo build --release)
#          BENCH_DIR=DIR (default: a new dir in /var/tmp)
# Measured here (2 shared cores at load 11-16, ext4 on virtio, N=2000, ROUNDS=5, 1 Dec 2026):
# poplib <- maccess 26883/s (first 6212), poplib <- Dovecot 15156/s (first 2367): 1.77x;
# mpop <- maccess 269/s, mpop <- Dovecot 266/s (mpop's own Maildir writes dominate). Single
# rounds swung between 1777 and 29132/s for maccess, 7834 and 15156/s for Dovecot.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
ROUNDS=${2:-5}
for v in "$N" "$ROUNDS"; do
  [[ "$v" =~ ^[0-9]+$ && "$v" -gt 0 ]] || { echo "usage: $0 [N] [ROUNDS]" >&2; exit 64; }
done
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --quiet --bin maccess
  BIN=$PWD/target/release
fi
for c in python3 mpop openssl dovecot; do
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
echo "maccess benchmark: $N messages of 2 KiB over POP3, in $D"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1:$2" >&2; exit 1
}

# Dovecot: alice:secret, her Maildir seeded (owned by vmail, as Dovecot wants).
DP=$(free_port)
POP3_PORT=$DP IMAP_PORT=$(free_port) IMAPS_PORT=$(free_port) POP3S_PORT=$(free_port) \
  DOVECOT_USERS="alice:secret" bash tests/peers/start-dovecot.sh "$D/peers" 127.0.0.1 2>/dev/null
bash tests/peers/seed-maildir.sh "$D/peers/mail/alice/Maildir" "$N" 2048 2>/dev/null

# maccess: the same messages, mreceive's password file format.
mkdir -p "$D/maccess/mail/alice"
bash tests/peers/seed-maildir.sh "$D/maccess/mail/alice/Maildir" "$N" 2048 2>/dev/null
echo "alice:$(openssl passwd -6 secret)" > "$D/maccess/passwd"
MP=$(free_port)
"$BIN/maccess" -l "127.0.0.1:$MP" -m "$D/maccess/mail" -p "$D/maccess/passwd" \
  --insecure-auth 2>"$D/maccess/log" &
PIDS+=($!)
wait_port 127.0.0.1 "$MP"

# poplib PORT LIST|RETR: one session; prints the messages retrieved and the seconds taken.
poplib() {
  python3 - "$1" "$2" "$N" <<'EOF'
import poplib, sys, time
port, what, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
p = poplib.POP3("127.0.0.1", port, timeout=60)
p.user("alice"); p.pass_("secret")
count, _ = p.stat()
assert count == n, f"{count} messages, expected {n}"
got = 0
if what == "RETR":
    for i in range(1, count + 1):
        _, lines, _ = p.retr(i)
        got += 1 if lines else 0
else:
    p.list()
p.quit()
print(got, time.perf_counter() - t0)
EOF
}
declare -A RATE FIRST
retrieve() { # NAME PORT: one timed run; keeps the best rate and the first
  local got secs r
  read -r got secs < <(poplib "$2" RETR)
  [ "$got" -eq "$N" ] || { echo "$1: $got messages retrieved, expected $N" >&2; exit 1; }
  r=$(python3 -c "print(f'{$N / $secs:.0f}')")
  [ -n "${FIRST[$1]:-}" ] || FIRST[$1]=$r
  if [ -z "${RATE[$1]:-}" ] || [ "$r" -gt "${RATE[$1]}" ]; then RATE[$1]=$r; fi
}
poplib "$MP" LIST >/dev/null
poplib "$DP" LIST >/dev/null
for _ in $(seq "$ROUNDS"); do
  retrieve "poplib <- maccess" "$MP"
  retrieve "poplib <- Dovecot" "$DP"
done
for n in "poplib <- maccess" "poplib <- Dovecot"; do
  printf '%-26s %8s msgs/s (best of %s; first %s)\n' "$n" "${RATE[$n]}" "$ROUNDS" "${FIRST[$n]}"
done

# mpop into a Maildir of its own (keep on: the mailboxes stay as they are).
mpop_from() { # NAME PORT
  local out="$D/mpop-$2" t0 t1 got
  mkdir -p "$out/new" "$out/cur" "$out/tmp"
  cat > "$D/mpoprc-$2" <<EOF
account default
host 127.0.0.1
port $2
tls off
auth user
user alice
password secret
delivery maildir $out
keep on
received_header off
uidls_file $D/uidls-$2
EOF
  chmod 600 "$D/mpoprc-$2"
  t0=$(date +%s.%N)
  mpop -C "$D/mpoprc-$2" -q
  t1=$(date +%s.%N)
  got=$(find "$out/new" "$out/cur" -type f | wc -l)
  [ "$got" -eq "$N" ] || { echo "$1: $got messages stored, expected $N" >&2; exit 1; }
  RATE[$1]=$(python3 -c "print(f'{$N / ($t1 - $t0):.0f}')")
  printf '%-26s %8s msgs/s\n' "$1" "${RATE[$1]}"
}
mpop_from "mpop <- maccess" "$MP"
mpop_from "mpop <- Dovecot" "$DP"

python3 - "${RATE[poplib <- maccess]}" "${RATE[poplib <- Dovecot]}" \
  "${RATE[mpop <- maccess]}" "${RATE[mpop <- Dovecot]}" <<'EOF'
import sys
pm, pd, mm, md = map(float, sys.argv[1:])
print(f"maccess / Dovecot: poplib {pm / pd:.2f}x, mpop {mm / md:.2f}x (one run each)")
EOF
