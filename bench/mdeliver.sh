#!/usr/bin/env bash
# Benchmark: N deliveries (default 2000) of the same messages into Maildirs on one filesystem
# by our mdeliver, Debian's maildrop and procmail, and dovecot-lda, each one process per
# message as an MTA runs them; plus a write+fsync+rename+dir-fsync loop in one process, the
# disk's own limit for a durable Maildir delivery. Prints messages/second and the ratio of
# each to mdeliver. Not a test: figures depend on the machine; run it on a quiet one.
#   usage: bench/mdeliver.sh [N [ROUNDS]]   env: MDELIVER=/abs/path (default: release build)
#                                                BENCH_DIR=DIR (default: new dir in /var/tmp)
# The tools take turns, N/ROUNDS messages each per round (default 4 rounds), so a change in
# the machine's load during the run hits all of them alike.
# Durability differs, which the numbers reflect: mdeliver fsyncs the file and new/ (the
# rename must survive a crash before it says "delivered"); maildrop and procmail fsync the
# file and link(2) it into new/ without a directory fsync; dovecot-lda fsyncs the file and
# its index/uidlist updates.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}; ROUNDS=${2:-4}
[[ "$N" =~ ^[0-9]+$ && "$ROUNDS" =~ ^[0-9]+$ && "$ROUNDS" -gt 0 && "$N" -ge "$ROUNDS" ]] \
  || { echo "usage: $0 [N [ROUNDS]]" >&2; exit 64; }
N=$(( N / ROUNDS * ROUNDS ))
if [ -z "${MDELIVER:-}" ]; then
  cargo build --release --locked --quiet --bin mdeliver
  MDELIVER=$PWD/target/release/mdeliver
fi
# mblaze installs its own mdeliver on PATH: ours is always called by absolute path.
case "$MDELIVER" in /*) ;; *) echo "MDELIVER must be an absolute path" >&2; exit 64;; esac
for c in maildrop procmail python3 runuser; do
  command -v "$c" >/dev/null || { echo "$0: $c missing (tests/peers/install.sh)" >&2; exit 69; }
done
LDA=/usr/lib/dovecot/dovecot-lda
[ -x "$LDA" ] && id vmail >/dev/null 2>&1 || LDA=""

D=${BENCH_DIR:-$(mktemp -d /var/tmp/mailpipe-bench.XXXXXX)}
mkdir -p "$D"; chmod 755 "$D"
trap 'rm -rf "$D"' EXIT
echo "mdeliver benchmark: $N deliveries each, $ROUNDS rounds, into $D" \
  "($(df --output=source,fstype "$D" | tail -1 | tr -s ' '))"

# Ten messages of 1 to 19 KiB, delivered in turn.
mkdir -p "$D/msgs"
python3 - "$D/msgs" <<'PY'
import sys
for i in range(10):
    body = "".join(f"line {j:05d} of message {i}: the quick brown fox jumps over the dog\n"
                   for j in range(16 + 28 * i))
    with open(f"{sys.argv[1]}/{i}", "w") as f:
        f.write(f"From: a@bench.test\nTo: b@bench.test\nSubject: bench {i}\n"
                f"Message-ID: <{i}@bench.test>\n\n{body}")
PY
chmod 644 "$D"/msgs/*

# The disk's limit: the Maildir protocol alone, in one process, no exec per message. It
# times its own loop (printing microseconds), so python's start-up is not counted.
cat > "$D/raw.py" <<'PY'
import os, sys, time
md, msgs, start, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = [open(f"{msgs}/{i}", "rb").read() for i in range(10)]
new = os.open(f"{md}/new", os.O_RDONLY | os.O_DIRECTORY)
t0 = time.monotonic()
for i in range(start, start + count):
    tmp, dst = f"{md}/tmp/{i}.raw", f"{md}/new/{i}.raw"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, data[i % 10]); os.fsync(fd); os.close(fd)
    os.rename(tmp, dst); os.fsync(new)
print(int((time.monotonic() - t0) * 1e6))
PY
for t in raw md-maildrop md-procmail; do mkdir -p "$D/$t"/{tmp,new,cur}; done
printf 'DEFAULT="%s/md-maildrop/"\n' "$D" > "$D/mailfilter"; chmod 600 "$D/mailfilter"
printf 'DEFAULT=%s/md-procmail/\nLOGFILE=/dev/null\n' "$D" > "$D/procmailrc"
H="$D/lda-home"
if [ -n "$LDA" ]; then
  # dovecot-lda refuses root without a userdb (-d): its loop runs as vmail with the user's
  # HOME, one runuser(1) per round, none per message.
  mkdir -p "$H"; chown vmail:vmail "$H"
  cat > "$D/lda.conf" <<CONF
mail_location = maildir:$H/Maildir
log_path = $H/lda.log
info_log_path = /dev/null
first_valid_uid = $(id -u vmail)
postmaster_address = postmaster@bench.test
CONF
  chmod 644 "$D/lda.conf"
fi

# batch TOOL START COUNT: deliver messages START.. with TOOL, one process per message.
batch() {
  local tool=$1 start=$2 count=$3 i
  case $tool in
    raw) python3 "$D/raw.py" "$D/raw" "$D/msgs" "$start" "$count" ;;
    mdeliver)
      for ((i = start; i < start + count; i++)); do
        "$MDELIVER" -f a@bench.test -a b@bench.test --no-rules "$D/md-mdeliver" < "$D/msgs/$((i % 10))"
      done ;;
    maildrop)
      for ((i = start; i < start + count; i++)); do
        maildrop -f a@bench.test "$D/mailfilter" < "$D/msgs/$((i % 10))"
      done ;;
    procmail)
      for ((i = start; i < start + count; i++)); do
        procmail -m "$D/procmailrc" < "$D/msgs/$((i % 10))"
      done ;;
    dovecot-lda)
      runuser -u vmail -- env HOME="$H" USER=vmail bash -c '
        for ((i = '"$start"'; i < '"$((start + count))"'; i++)); do
          '"$LDA"' -c '"$D"'/lda.conf -f a@bench.test < '"$D"'/msgs/$((i % 10)) || exit 1
        done' ;;
  esac
}

TOOLS=(raw mdeliver maildrop procmail)
[ -n "$LDA" ] && TOOLS+=(dovecot-lda)
declare -A USEC
for t in "${TOOLS[@]}"; do USEC[$t]=0; done
per=$(( N / ROUNDS ))
for ((r = 0; r < ROUNDS; r++)); do
  for t in "${TOOLS[@]}"; do
    t0=${EPOCHREALTIME/./}
    out=$(batch "$t" $(( r * per )) "$per") || { echo "$t failed in round $r" >&2; exit 1; }
    t1=${EPOCHREALTIME/./}
    if [ "$t" = raw ]; then USEC[$t]=$(( USEC[$t] + out )); else USEC[$t]=$(( USEC[$t] + t1 - t0 )); fi
  done
done

declare -A DIR=([raw]="$D/raw" [mdeliver]="$D/md-mdeliver" [maildrop]="$D/md-maildrop"
                [procmail]="$D/md-procmail" [dovecot-lda]="$H/Maildir")
printf '\n%-12s %10s %12s\n' tool msgs/s vs-mdeliver
for t in "${TOOLS[@]}"; do
  got=$(find "${DIR[$t]}/new" "${DIR[$t]}/cur" -type f | wc -l)
  [ "$got" -eq "$N" ] || { echo "$t: $got messages stored, expected $N" >&2; exit 1; }
  printf '%-12s %10.0f %11.2fx\n' "$t" \
    "$(( N * 1000000000 / USEC[$t] ))e-3" "$(( USEC[mdeliver] * 1000 / USEC[$t] ))e-3"
done
