#!/usr/bin/env bash
# Benchmark: fetching N messages over IMAP with implicit TLS (port 993's way) from a private
# Dovecot (tests/peers/start-dovecot.sh, its Maildir seeded by seed-maildir.sh with 200-byte
# bodies) into a fresh Maildir, by
#   mfetch --imap --keep (batches of 500: UID FETCH of the batch in one command, bodies
#     streamed into files written unsynced, synced together, renamed, new/ synced once,
#     then the state saved),
#   mbsync (isync; a pull of the folder into a Maildir, FSync on, its default: one fsync
#     per message, its sync state per message),
#   mfetch --imap deleting on the server (UID STORE \Deleted + UID EXPUNGE per batch, after
#     the batch is durable), for what deletion costs;
# each timed from start to exit, the count in the Maildir checked; prints messages/second and
# the ratio to mbsync. Not a test: figures depend on the machine (2 cores, shared). Needs
# root for Dovecot.
# Measured here (2 shared cores at a load of ~13 from other workers' builds, ext4 on virtio,
# one run each, 1 Dec 2026): N=2000: mfetch --keep 2943/s, mbsync 758/s (3.9x), mfetch
# deleting 1867/s (2.5x); an earlier run at N=2000 under heavier load: 1458/s vs 189/s.
# N=20000: mfetch --keep 3077/s, mbsync 734/s (4.2x), mfetch deleting 2185/s (3.0x;
# Dovecot's expunge of 500 files a batch is most of the difference). mfetch itself used
# 0.01 s user and 0.22 s system time of 1.24 s for 2000: the rest is Dovecot and the disk.
#   usage: bench/mfetch_imap.sh [N=2000]
#   env:   BIN=/abs/dir with a release mfetch (default: cargo build --release)
#          BENCH_DIR=DIR (default: a new dir in /var/tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
[[ "$N" =~ ^[0-9]+$ && "$N" -ge 1 ]] || { echo "usage: $0 [N>=1]" >&2; exit 64; }
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --quiet --bin mfetch
  BIN=$PWD/target/release
fi
for c in dovecot mbsync python3; do
  command -v "$c" >/dev/null || { echo "$0: $c missing (tests/peers/install.sh)" >&2; exit 69; }
done
[ "$(id -u)" = 0 ] || { echo "$0: Dovecot needs root" >&2; exit 77; }

D=${BENCH_DIR:-$(mktemp -d /var/tmp/mailpipe-bench.XXXXXX)}
mkdir -p "$D"; chmod 755 "$D"
cleanup() { bash tests/peers/stop.sh "$D/peers" >/dev/null 2>&1 || true; rm -rf "$D"; }
trap cleanup EXIT
now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

P=$D/peers; mkdir -p "$P"
IMAPS=$(free_port)
IMAP_PORT=$(free_port) IMAPS_PORT=$IMAPS POP3_PORT=$(free_port) POP3S_PORT=$(free_port) \
  bash tests/peers/start-dovecot.sh "$P" 127.0.0.1 >/dev/null
CA=$P/tls/ca.pem
DROP=$P/mail/alice/Maildir

# A fresh server folder of N messages (Dovecot's index and UIDs too).
reseed() {
  rm -rf "$DROP"/new/* "$DROP"/cur/* "$DROP"/dovecot* 2>/dev/null || true
  bash tests/peers/seed-maildir.sh "$DROP" "$N" >/dev/null 2>&1
}
count() { find "$1/new" "$1/cur" -type f 2>/dev/null | wc -l; }

declare -A RATE
run() { # name maildir left-on-server command...
  local name=$1 md=$2 left=$3; shift 3
  reseed
  local t0 t1 n
  t0=$(now)
  "$@" >"$D/$name.out" 2>&1 || { echo "$name failed:"; cat "$D/$name.out"; exit 1; }
  t1=$(now)
  n=$(count "$md")
  [ "$n" = "$N" ] || { echo "$name: $n of $N messages in $md"; cat "$D/$name.out"; exit 1; }
  [ "$(count "$DROP")" = "$left" ] || { echo "$name: $(count "$DROP") left on the server"; exit 1; }
  RATE[$name]=$(python3 -c "print(round($N/($t1-$t0)))")
  printf '%-22s %6d msg/s  (%.2f s)\n' "$name" "${RATE[$name]}" "$(python3 -c "print($t1-$t0)")"
}

mfetch() { # maildir state-dir flags...
  local md=$1 st=$2; shift 2
  "$BIN/mfetch" --imap "127.0.0.1:$IMAPS" --user alice --password-command "echo secret" \
    --ca-file "$CA" --maildir "$md" --state-dir "$st" "$@"
}

run "mfetch --keep" "$D/m-keep" "$N" mfetch "$D/m-keep" "$D/s-keep" --keep

mkdir -p "$D/m-mbsync"
cat > "$D/mbsyncrc" <<CONF
IMAPAccount bench
Host localhost
Port $IMAPS
User alice
Pass secret
SSLType IMAPS
CertificateFile $CA

IMAPStore far
Account bench

MaildirStore near
Path $D/m-mbsync/
Inbox $D/m-mbsync/

Channel bench
Far :far:INBOX
Near :near:
Sync Pull New
Create Near
SyncState $D/mbsync-state/
CONF
mkdir -p "$D/mbsync-state"
run mbsync "$D/m-mbsync" "$N" mbsync -c "$D/mbsyncrc" -q bench

run "mfetch (delete)" "$D/m-del" 0 mfetch "$D/m-del" "$D/s-del"

echo
for t in "mfetch --keep" "mfetch (delete)"; do
  printf '%-22s %sx mbsync\n' "$t" "$(python3 -c "print(round(${RATE[$t]}/${RATE[mbsync]}, 2))")"
done
