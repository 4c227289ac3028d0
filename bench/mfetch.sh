#!/usr/bin/env bash
# Benchmark: fetching N messages over POP3 with TLS (implicit, port 995's way) from a private
# Dovecot (tests/peers/start-dovecot.sh, its Maildir seeded by seed-maildir.sh with 200-byte
# bodies) into a fresh Maildir, deleting them on the server, by
#   mfetch (batches of 500: files written unsynced, synced together, renamed, new/ synced
#     once, the UIDL state saved, then DELE; QUIT at the end),
#   mpop (delivery maildir; its UIDLs file),
#   fetchmail with our mdeliver as its MDA (one process and one fsync pair per message),
#   getmail6 (SimplePOP3SSLRetriever into a Maildir destination);
# each timed from start to exit, with the count in the Maildir checked; prints messages/second
# and the ratios to mpop. Not a test: figures depend on the machine (2 cores, shared).
# Needs root for Dovecot.
#   usage: bench/mfetch.sh [N=2000]
#   env:   BIN=/abs/dir with a release mfetch and mdeliver (default: cargo build --release)
#          IMAP=0 to skip the IMAP half (bench/mfetch_imap.sh: mfetch --imap vs mbsync)
#          BENCH_DIR=DIR (default: a new dir in /var/tmp)
# Durability: every message mfetch stores is synced (file and new/) before its UIDL is saved
# and before the DELE; mdeliver syncs each file and new/ before it exits 0 to fetchmail.
# Measured here (2 shared cores under a load of 13 from other builds, ext4 on virtio,
# N=2000, one run, 1 Dec 2026): mfetch 2772/s, mpop 829/s (mfetch/mpop 3.34x),
# fetchmail+mdeliver 76/s, getmail6 38/s. The machine's load moves every figure by 2x
# between runs (mfetch 1600 to 2800/s, mpop 170 to 830/s); mfetch was ahead of mpop in each.
# Where mfetch's time goes: into a tmpfs 0.37 s for 2000, onto ext4 0.9 s: the file syncs
# (started as each file is written, eight at a time) are most of it.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
[[ "$N" =~ ^[0-9]+$ && "$N" -ge 1 ]] || { echo "usage: $0 [N>=1]" >&2; exit 64; }
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --quiet --bin mfetch --bin mdeliver
  BIN=$PWD/target/release
fi
for c in dovecot mpop fetchmail getmail python3 runuser; do
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
POP3S=$(free_port)
IMAP_PORT=$(free_port) IMAPS_PORT=$(free_port) POP3_PORT=$(free_port) POP3S_PORT=$POP3S \
  bash tests/peers/start-dovecot.sh "$P" 127.0.0.1 >/dev/null
CA=$P/tls/ca.pem
DROP=$P/mail/alice/Maildir

seed() { bash tests/peers/seed-maildir.sh "$DROP" "$N" >/dev/null 2>&1; }
count() { find "$1/new" "$1/cur" -type f 2>/dev/null | wc -l; }

declare -A RATE
run() { # name maildir command...
  local name=$1 md=$2; shift 2
  seed
  local t0 t1 n
  t0=$(now)
  if ! "$@" >"$D/$name.out" 2>&1; then
    # An incumbent that fails here (getmail6's SIGCHLD race under load) is reported, not
    # fatal; the server is emptied for the next one.
    echo "$name failed: $(tail -n 1 "$D/$name.out")"
    find "$DROP/new" "$DROP/cur" -type f -delete
    return 0
  fi
  t1=$(now)
  n=$(count "$md")
  [ "$n" = "$N" ] || { echo "$name: $n of $N messages in $md"; cat "$D/$name.out"; exit 1; }
  [ "$(count "$DROP")" = 0 ] || { echo "$name: left mail on the server"; exit 1; }
  RATE[$name]=$(python3 -c "print(round($N/($t1-$t0)))")
  printf '%-22s %6d msg/s  (%.2f s)\n' "$name" "${RATE[$name]}" "$(python3 -c "print($t1-$t0)")"
}

run mfetch "$D/m-mfetch" "$BIN/mfetch" --pop3 "127.0.0.1:$POP3S" --user alice \
  --password-command "echo secret" --ca-file "$CA" --maildir "$D/m-mfetch" \
  --state-dir "$D/s-mfetch"

mkdir -p "$D/m-mpop"/{new,cur,tmp}
cat > "$D/mpoprc" <<CONF
account default
host 127.0.0.1
port $POP3S
tls on
tls_starttls off
tls_trust_file $CA
auth user
user alice
password secret
delivery maildir $D/m-mpop
uidls_file $D/mpop-uidls
keep off
CONF
chmod 600 "$D/mpoprc"
run mpop "$D/m-mpop" mpop -C "$D/mpoprc" -q

cat > "$D/fetchmailrc" <<CONF
set no syslog
poll 127.0.0.1 service $POP3S protocol pop3 auth password timeout 60
  user alice password secret ssl sslcertfile $CA sslcertck sslcommonname localhost
  fetchall nokeep
  mda "$BIN/mdeliver $D/m-fetchmail"
CONF
chmod 600 "$D/fetchmailrc"
run fetchmail+mdeliver "$D/m-fetchmail" fetchmail -f "$D/fetchmailrc" -s --idfile "$D/fetchids" -N

mkdir -p "$D/m-getmail"/{new,cur,tmp} "$D/getmail"
cat > "$D/getmail/getmailrc" <<CONF
[retriever]
type = SimplePOP3SSLRetriever
server = 127.0.0.1
port = $POP3S
username = alice
password = secret
ca_certs = $CA
[destination]
type = Maildir
path = $D/m-getmail/
[options]
delete = true
read_all = true
verbose = 0
CONF
# getmail refuses to deliver as root: it runs as nobody, its files handed over.
chown -R nobody "$D/getmail" "$D/m-getmail"
run getmail6 "$D/m-getmail" runuser -u nobody -- getmail --getmaildir "$D/getmail" --rcfile getmailrc

echo
for t in mfetch fetchmail+mdeliver getmail6; do
  [ -n "${RATE[$t]:-}" ] || continue
  printf '%-22s %sx mpop\n' "$t" "$(python3 -c "print(round(${RATE[$t]}/${RATE[mpop]}, 2))")"
done

# IMAP: mfetch --imap against mbsync, on a Dovecot of its own.
if [ "${IMAP:-1}" != 0 ]; then
  echo
  BIN=$BIN bash bench/mfetch_imap.sh "$N"
fi
