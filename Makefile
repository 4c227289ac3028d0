# mailpipe: build, test, install. PREFIX and DESTDIR as usual.
PREFIX  ?= /usr/local
DESTDIR ?=
CARGO   ?= cargo
BINDIR   = $(DESTDIR)$(PREFIX)/bin
MANDIR   = $(DESTDIR)$(PREFIX)/share/man
BASHDIR  = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR   = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHDIR  = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
TOOLS    = $(basename $(notdir $(wildcard src/bin/*.rs)))
# The system queue (mrelay(1), THE SYSTEM QUEUE): the mail service user owns it, and mdrop
# is setgid to the drop group, the only group that may write the maildrop.
SPOOL      ?= /var/spool/mailpipe
MAIL_USER  ?= mailpipe
DROP_GROUP ?= mailpipe-drop

.PHONY: all build test ci peers docs demo bench fuzz fuzz-ci install install-spool uninstall clean

all: build

build:
	$(CARGO) build --release --locked

# The whole test suite; the interop tests need the peers (make peers, as root).
test:
	$(CARGO) test --locked

# What CI runs on a fresh machine: install the peers, a short fuzzing pass, then every test,
# none skipped.
ci: peers fuzz-ci
	CI=true $(CARGO) test --locked

peers:
	bash tests/peers/install.sh

# Regenerate man pages and completions from the clap definitions.
docs:
	MAILPIPE_REGEN=1 $(CARGO) test --locked --test it docs::

# The main job on an embedded default: all five steps on one host (compose, submit, relay,
# receive, access), no root, no server to install, loopback ports in a temporary directory.
demo: build
	bash demo/five-steps.sh ./target/release/

# Coverage-guided fuzzing (cargo-afl): every target in fuzz/ for SECS seconds each, one at a
# time; fuzz-ci is CI's short pass (fuzz/run.sh says what it installs and prints). Its cost,
# measured on the 2-core machine: installing cargo-afl and AFL++ ~70 s, the instrumented
# build from scratch ~5 min of CPU, then 11 targets x 10 s = 2 min (each of the first
# findings came within 4 s).
SECS ?= 60
fuzz:
	bash fuzz/run.sh $(SECS)

fuzz-ci:
	bash fuzz/run.sh 10

bench: build
	bash bench/run

install: build
	install -d $(BINDIR) $(MANDIR)/man1 $(MANDIR)/man5 $(MANDIR)/man7 $(BASHDIR) $(ZSHDIR) $(FISHDIR)
	for t in $(TOOLS); do \
	  install -m 755 target/release/$$t $(BINDIR)/$$t; \
	  install -m 644 completions/$$t/$$t.bash $(BASHDIR)/$$t; \
	  install -m 644 completions/$$t/_$$t $(ZSHDIR)/_$$t; \
	  install -m 644 completions/$$t/$$t.fish $(FISHDIR)/$$t.fish; \
	done
	install -m 644 man/*.1 $(MANDIR)/man1/
	if getent group $(DROP_GROUP) >/dev/null && chgrp $(DROP_GROUP) $(BINDIR)/mdrop 2>/dev/null; then \
	  chmod 2755 $(BINDIR)/mdrop; \
	else echo "note: mdrop is not setgid $(DROP_GROUP) (no such group, or not root): see mdrop(1)"; fi
	for f in man/*.5; do [ -e "$$f" ] && install -m 644 "$$f" $(MANDIR)/man5/ || true; done
	for f in man/*.7; do [ -e "$$f" ] && install -m 644 "$$f" $(MANDIR)/man7/ || true; done
	@echo "note: Debian's mblaze installs a different mdeliver as /usr/bin/mdeliver, and cron and"
	@echo "      Postfix search only /usr/bin and /bin: call ours as $(PREFIX)/bin/mdeliver."

# The system queue and its maildrop, as root, once the user and the group exist.
install-spool:
	install -d -m 755 $(DESTDIR)$(SPOOL)
	install -d -o $(MAIL_USER) -m 700 $(DESTDIR)$(SPOOL)/queue
	install -d -o $(MAIL_USER) -g $(DROP_GROUP) -m 1730 $(DESTDIR)$(SPOOL)/maildrop

uninstall:
	for t in $(TOOLS); do \
	  rm -f $(BINDIR)/$$t $(MANDIR)/man1/$$t.1 $(BASHDIR)/$$t $(ZSHDIR)/_$$t $(FISHDIR)/$$t.fish; \
	done
	rm -f $(MANDIR)/man5/mailpipe-*.5 $(MANDIR)/man7/mailpipe.7

clean:
	$(CARGO) clean
