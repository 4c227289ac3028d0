#!/usr/bin/env python3
# Verify every DKIM-Signature of the message on stdin with dkimpy, the independent verifier of
# mailpipe's signatures (tests/it/dkim.rs). Its dnsfunc hook answers the key's TXT question
# from the command line instead of the system resolver:
#   dkim-verify.py NAME=TXT [NAME=TXT...] < message
# where NAME is SELECTOR._domainkey.DOMAIN (no trailing dot) and TXT the record's value.
# Exit 0 and prints "pass N" when all N signatures verify; exit 1 and the reason otherwise.
import sys
import dkim

records = {}
for arg in sys.argv[1:]:
    name, _, value = arg.partition("=")
    records[name.rstrip(".").lower()] = value.encode()


def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    return records.get(name.rstrip(".").lower())


msg = sys.stdin.buffer.read()
d = dkim.DKIM(msg)
n = len([l for l in msg.split(b"\n") if l.lower().startswith(b"dkim-signature:")])
if n == 0:
    print("no DKIM-Signature")
    sys.exit(1)
for i in range(n):
    if not d.verify(idx=i, dnsfunc=dnsfunc):
        print("fail %d: %s" % (i, d.err if hasattr(d, "err") else "bad signature"))
        sys.exit(1)
print("pass %d" % n)
