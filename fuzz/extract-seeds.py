#!/usr/bin/env python3
"""Extract fuzzing seeds from the project's tests: the string literals the tests feed each
parser, sorted to the targets by what they look like. Rerun after tests change:
    python3 fuzz/extract-seeds.py    (from the crate root; rewrites fuzz/seeds/)
"""
import glob, hashlib, os, re, shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIT = re.compile(r'(b?)r(#*)"(.*?)"\2|(b?)"((?:[^"\\]|\\.)*)"', re.S)


def unescape(s):
    out, i = bytearray(), 0
    while i < len(s):
        c = s[i]
        if c != '\\':
            out += c.encode()
            i += 1
            continue
        e = s[i + 1]
        i += 2
        if e == '\n':  # line continuation: skip leading whitespace
            while i < len(s) and s[i] in ' \t\n':
                i += 1
        elif e in 'nrt0\\"\'':
            out += {'n': b'\n', 'r': b'\r', 't': b'\t', '0': b'\0', '\\': b'\\', '"': b'"', "'": b"'"}[e]
        elif e == 'x':
            out.append(int(s[i:i + 2], 16))
            i += 2
        elif e == 'u':
            j = s.index('}', i)
            out += chr(int(s[i + 1:j], 16)).encode()
            i = j + 1
        else:
            out += ('\\' + e).encode()
    return bytes(out)


def literals(path):
    src = open(path, encoding='utf-8').read()
    for m in LIT.finditer(src):
        if m.group(3) is not None:
            yield m.group(3).encode()
        else:
            try:
                yield unescape(m.group(5))
            except (ValueError, IndexError):
                pass


FILES = sorted(glob.glob(f'{ROOT}/src/**/*.rs', recursive=True) + glob.glob(f'{ROOT}/tests/it/**/*.rs', recursive=True))
VERB = re.compile(rb'^(EHLO|HELO|MAIL FROM|RCPT TO|DATA|BDAT|RSET|NOOP|QUIT|VRFY|HELP|STARTTLS|AUTH)\b', re.I)
REPLY = re.compile(rb'^[2-5]\d\d([ -]|\r?\n|$)')
MSG = re.compile(rb'^[A-Za-z-]+:.*\n\r?\n', re.S)
RULE = re.compile(rb'^\s*(header|to|body|sender|recipient|size|all)\b.*\b(folder|copy|discard|pipe|filter|forward|flags)\b', re.M)
CONF = re.compile(rb'^(defaults|account|host|from|port|auth|tls|user|password)\b', re.M)

seeds = {t: set() for t in ['smtp_command', 'smtp_reply', 'ehlo', 'inbound', 'header', 'address',
                             'rfc2047', 'rfc2231', 'mime', 'config', 'rules']}
messages = []
for f in FILES:
    rel = os.path.relpath(f, ROOT)
    for lit in literals(f):
        if not lit or len(lit) > 4096:
            continue
        for line in lit.split(b'\r\n'):
            if VERB.match(line) and len(line) < 600:
                seeds['smtp_command'].add(line + b'\r\n')
        if REPLY.match(lit):
            seeds['smtp_reply'].add(lit)
            if lit.startswith(b'250-'):
                seeds['ehlo'].add(lit)
        if 'inbound' in rel or 'data.rs' in rel:
            for mode in (b'\x00\xff\x00', b'\x31\xff\x07', b'\x02\xff\x05', b'\xa3\x08\x01'):
                seeds['inbound'].add(mode + lit)
        if MSG.match(lit):
            messages.append(lit)
        if b'@' in lit and len(lit) < 300 and b'\n' not in lit and ('address' in rel or 'compose' in rel or 'mcompose' in rel):
            seeds['address'].add(lit)
        if b'=?' in lit or ('fold.rs' in rel and len(lit) < 300):
            seeds['rfc2047'].add(lit)
        if b'filename' in lit or b'charset' in lit:
            seeds['rfc2231'].add(lit)
        if CONF.search(lit) and b'\n' in lit and ('account' in rel or 'config' in rel or 'msubmit' in rel):
            seeds['config'].add(lit)
        if RULE.search(lit) and ('rules' in rel):
            seeds['rules'].add(lit)
for m in messages:
    seeds['header'].add(m)
    seeds['mime'].add(m)
rules = sorted(seeds['rules'])
for i, m in enumerate(sorted(messages)[:len(rules)]):
    seeds['rules'].add(rules[i] + b'\0' + m)

for target, found in seeds.items():
    d = f'{ROOT}/fuzz/seeds/{target}'
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    # Small corpora fuzz faster: at most 64 seeds, the shortest first.
    for s in sorted(found, key=lambda b: (len(b), b))[:64]:
        open(f'{d}/{hashlib.sha1(s).hexdigest()[:16]}', 'wb').write(s)
    print(f'{target}: {min(len(found), 64)}')
