#!/usr/bin/env bash
# Benchmark: N deliveries (default 2000) of the same messages into Maildirs on one filesystem
# by our mdeliver, Debian's maildrop and procmail, and dovecot-lda, each one process per
# message as an MTA runs them; plus a write+fsync+rename+dir-fsync loop in one process, the
# disk's own limit for a durable Maildir delivery. Prints messages/second and the ratio of
# each to mdeliver. Not a test: figures depend on the machine; run it on a quiet one.
#   usage: bench/mdeliver.sh [N]      env: MDELIVER=/abs/path (default: release build)
#                                          BENCH_DIR=DIR (default: a new dir in /var/tmp)
# Durability differs, which the numbers reflect: mdeliver fsyncs the file and new/ (the
# rename must survive a crash before it says "delivered"); maildrop and procmail fsync the
# file and link(2) it into new/ without a directory fsync; dovecot-lda fsyncs the file and
# its index/uidlist updates.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
[[ "$N" =~ ^[0-9]+$ && "$N" -gt 0 ]] || { echo "usage: $0 [N]" >&2; exit 64; }
if [ -z "${MDELIVER:-}" ]; then
  cargo build --release --locked --quiet --bin mdeliver
  MDELIVER=$PWD/target/release/mdeliver
fi
# mblaze installs its own mdeliver on PATH: ours is always called by absolute path.
case "$MDELIVER" in /*) ;; *) echo "MDELIVER must be an absolute path" >&2; exit 64;; esac
for c in maildrop procmail python3; do
  command -v "$c" >/dev/null || { echo "$0: $c missing (tests/peers/install.sh)" >&2; exit 69; }
done
LDA=/usr/lib/dovecot/dovecot-lda
[ -x "$LDA" ] && id vmail >/dev/null 2>&1 || LDA=""

D=${BENCH_DIR:-$(mktemp -d /var/tmp/mailpipe-bench.XXXXXX)}
mkdir -p "$D"; chmod 755 "$D"
trap 'rm -rf "$D"' EXIT
echo "mdeliver benchmark: $N deliveries each into $D ($(df -h --output=source,fstype "$D" | tail -1 | tr -s ' '))"

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

now() { date +%s.%N; }
declare -A RATE
# time_loop NAME DIR CMD...: run CMD once per message with it on stdin; check the count.
time_loop() {
  local name=$1 dir=$2; shift 2
  local t0 t1 i
  t0=$(now)
  for ((i = 0; i < N; i++)); do "$@" < "$D/msgs/$((i % 10))" || { echo "$name failed at $i" >&2; exit 1; }; done
  t1=$(now)
  record "$name" "$dir" "$t0" "$t1"
}
record() {
  local got
  got=$(find "$2/new" "$2/cur" -type f | wc -l)
  [ "$got" -eq "$N" ] || { echo "$1: $got messages stored, expected $N" >&2; exit 1; }
  RATE[$1]=$(python3 -c "print(f'{$N / ($4 - $3):.0f}')")
}

# The disk's limit: the Maildir protocol alone, in one process, no exec per message.
mkdir -p "$D/raw"/{tmp,new,cur}
t0=$(now)
python3 - "$D/raw" "$D/msgs" "$N" <<'PY'
import os, sys
md, msgs, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = [open(f"{msgs}/{i}", "rb").read() for i in range(10)]
new = os.open(f"{md}/new", os.O_RDONLY | os.O_DIRECTORY)
for i in range(n):
    tmp, dst = f"{md}/tmp/{i}.raw", f"{md}/new/{i}.raw"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, data[i % 10]); os.fsync(fd); os.close(fd)
    os.rename(tmp, dst); os.fsync(new)
PY
t1=$(now)
record raw "$D/raw" "$t0" "$t1"

time_loop mdeliver "$D/md-mdeliver" "$MDELIVER" -f a@bench.test -a b@bench.test --no-rules "$D/md-mdeliver"

mkdir -p "$D/md-maildrop"/{tmp,new,cur}
printf 'DEFAULT="%s/md-maildrop/"\n' "$D" > "$D/mailfilter"; chmod 600 "$D/mailfilter"
time_loop maildrop "$D/md-maildrop" maildrop -f a@bench.test "$D/mailfilter"

mkdir -p "$D/md-procmail"/{tmp,new,cur}
printf 'DEFAULT=%s/md-procmail/\nLOGFILE=/dev/null\n' "$D" > "$D/procmailrc"
time_loop procmail "$D/md-procmail" procmail -m "$D/procmailrc"

if [ -n "$LDA" ]; then
  # dovecot-lda refuses root without a userdb (-d): run its loop as vmail, with the
  # user's HOME, so no runuser(1) is paid per message.
  H="$D/lda-home"; mkdir -p "$H"; chown vmail:vmail "$H"
  cat > "$D/lda.conf" <<CONF
mail_location = maildir:$H/Maildir
log_path = $H/lda.log
info_log_path = /dev/null
first_valid_uid = $(id -u vmail)
postmaster_address = postmaster@bench.test
CONF
  chmod 644 "$D/lda.conf"
  t0=$(now)
  runuser -u vmail -- env HOME="$H" USER=vmail bash -c '
    for ((i = 0; i < '"$N"'; i++)); do
      '"$LDA"' -c '"$D"'/lda.conf -f a@bench.test < '"$D"'/msgs/$((i % 10)) || exit 1
    done' || { echo "dovecot-lda failed" >&2; exit 1; }
  t1=$(now)
  record dovecot-lda "$H/Maildir" "$t0" "$t1"
fi

printf '\n%-12s %10s %12s\n' tool msgs/s vs-mdeliver
for t in raw mdeliver maildrop procmail dovecot-lda; do
  [ -n "${RATE[$t]:-}" ] || continue
  printf '%-12s %10s %12s\n' "$t" "${RATE[$t]}" \
    "$(python3 -c "print(f'{${RATE[$t]} / ${RATE[mdeliver]}:.2f}x')")"
done
