#!/usr/bin/env bash
# The five steps of Internet mail on one host, with mailpipe's tools alone: no root, no server
# to install, unprivileged loopback ports, everything in one temporary directory.
#
#   mcompose | msubmit  ->  mreceive (submission: STARTTLS, AUTH)  ->  the queue
#   ->  mrelay (a configured route)  ->  mreceive (the MX of example.net)  ->  bob's Maildir
#   ->  maccess (POP3 over TLS)  ->  mfetch  ->  the reader's Maildir
#
# It prints one line per step, shows the message as the reader got it, checks that its body
# arrived byte-identical, and stops its servers on exit or Ctrl-C.
# Usage: demo/five-steps.sh [BINDIR]   (default: target/release)
set -euo pipefail
bin=$(cd "${1:-target/release}" && pwd)
for t in mcompose msubmit mreceive mrelay maccess mfetch; do
  [ -x "$bin/$t" ] || { echo "demo: $bin/$t: not built (cargo build --release)" >&2; exit 69; }
done
command -v openssl >/dev/null || { echo "demo: openssl: needed for the throw-away certificate" >&2; exit 69; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/mailpipe-demo.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '%-9s %-52s %s\n' "$1" "$2" "$3"; }

# A free port on 127.0.0.1: one nobody answers on, below the kernel's range of ephemeral
# ports (32768 and up), which outgoing connections may hold without listening.
free_port() {
  local p
  while :; do
    p=$((10000 + RANDOM % 22000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
wait_port() {
  local i
  for i in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "demo: nothing listens on 127.0.0.1:$1; the servers said:" >&2
  tail -n 5 "$dir"/*.log >&2 || true
  return 1
}
submit_port=$(free_port); mx_port=$(free_port); pop_port=$(free_port)
while [ "$mx_port" = "$submit_port" ]; do mx_port=$(free_port); done
while [ "$pop_port" = "$submit_port" ] || [ "$pop_port" = "$mx_port" ]; do pop_port=$(free_port); done

# A throw-away certificate for localhost, trusted by the clients through --ca-file.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
chmod 600 "$dir/key.pem"

# Passwords: alice submits, bob reads his mail. One file for SMTP AUTH and POP3.
printf 'alice:%s\nbob:%s\n' \
  "$(printf 'alice-secret' | "$bin/mreceive" --hash-password)" \
  "$(printf 'bob-secret' | "$bin/mreceive" --hash-password)" > "$dir/passwd"
chmod 600 "$dir/passwd"

# The servers: the submission server of example.org, the MX of example.net, bob's POP3 server.
"$bin/mreceive" -l "127.0.0.1:$submit_port" --submission --hostname mail.example.org \
  -d example.org -m "$dir/example.org" -p "$dir/passwd" \
  --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem" --queue-dir "$dir/queue" \
  2>"$dir/submission.log" & pids+=($!)
"$bin/mreceive" -l "127.0.0.1:$mx_port" --hostname mx.example.net \
  -d example.net -m "$dir/example.net" 2>"$dir/mx.log" & pids+=($!)
"$bin/maccess" -l "127.0.0.1:$pop_port" --tls-on-connect --hostname pop.example.net \
  -m "$dir/example.net" -p "$dir/passwd" \
  --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem" 2>"$dir/maccess.log" & pids+=($!)
wait_port "$submit_port"; wait_port "$mx_port"; wait_port "$pop_port"

body='Hello Bob,

this message went through all five steps of Internet mail on one host.
.
A line with a lone dot above, and one starting with "From " below:
From here on it is only mailpipe.

Alice'

# 1. Compose.
printf '%s\n' "$body" > "$dir/body.txt"
"$bin/mcompose" -f alice@example.org -t bob@example.net -s 'five steps' < "$dir/body.txt" \
  > "$dir/message.eml"
step mcompose "composed $(wc -c < "$dir/message.eml") bytes" "-> stdout"

# 2. Submit: STARTTLS, the certificate checked against the throw-away CA, AUTH as alice.
"$bin/msubmit" --host localhost --port "$submit_port" --tls starttls --ca-file "$dir/cert.pem" \
  --user alice --password-command 'printf alice-secret' -t < "$dir/message.eml"
step msubmit "submitted over STARTTLS as alice" "-> mreceive :$submit_port"
queued=$(find "$dir/queue" -type f -path '*/new/*' 2>/dev/null | wc -l)
step mreceive "accepted for a remote domain, queued ($queued entry)" "-> queue/new"

# 3. Relay: the route says where example.net's mail goes (no DNS needed on a demo host).
printf 'route example.net 127.0.0.1:%s\n' "$mx_port" > "$dir/relay.conf"
"$bin/mrelay" -C "$dir/relay.conf" --queue-dir "$dir/queue" --hostname mail.example.org \
  --allow-private-targets -q 2>"$dir/relay.log"
step mrelay "$(grep -o 'status=[a-z]*' "$dir/relay.log" | head -1) via the route" "-> mreceive :$mx_port"

# 4. Receive and deliver.
box="$dir/example.net/bob/Maildir"
for i in $(seq 50); do [ -n "$(ls -A "$box/new" 2>/dev/null)" ] && break; sleep 0.05; done
step mreceive "delivered into bob's Maildir" "-> ${box#"$dir"/}/new"

# 5. Access: bob's reader fetches it over POP3 with TLS, then it is gone from the server.
mkdir -p "$dir/reader"
"$bin/mfetch" --pop3 "localhost:$pop_port" --tls implicit --ca-file "$dir/cert.pem" \
  --user bob --password-command 'printf bob-secret' --maildir "$dir/reader/Maildir"
got=$(find "$dir/reader/Maildir/new" "$dir/reader/Maildir/cur" -type f | head -1)
[ -n "$got" ] || { echo "demo: mfetch stored nothing" >&2; exit 1; }
left=$(find "$box/new" "$box/cur" -type f | wc -l)
[ "$left" = 0 ] || { echo "demo: $left message(s) still on the POP3 server" >&2; exit 1; }
step maccess "served it over POP3 with TLS, deleted it after QUIT" "-> mfetch"
step mfetch "fetched, synced, then told the server to delete it" "-> reader/Maildir/new"

echo
echo "--- the message as the reader got it ---"
cat "$got"
echo "---"
# The body as sent: what follows the header's empty line, CRLF or LF.
body_of() { sed -e 's/\r$//' "$1" | sed -n '/^$/,$p' | sed 1d; }
if [ "$(body_of "$got")" = "$body" ]; then
  echo "demo: the body arrived byte-identical"
else
  echo "demo: the body differs from what was sent" >&2
  diff <(printf '%s\n' "$body") <(body_of "$got") >&2 || true
  exit 1
fi
