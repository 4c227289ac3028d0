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

.PHONY: all build test ci peers docs demo bench install uninstall clean

all: build

build:
	$(CARGO) build --release --locked

# The whole test suite; the interop tests need the peers (make peers, as root).
test:
	$(CARGO) test --locked

# What CI runs on a fresh machine: install the peers, then every test, none skipped.
ci: peers
	CI=true $(CARGO) test --locked

peers:
	bash tests/peers/install.sh

# Regenerate man pages and completions from the clap definitions.
docs:
	MAILPIPE_REGEN=1 $(CARGO) test --locked --test it docs::

# The main job on an embedded default: compose a message and deliver it into a Maildir.
demo: build
	mkdir -p /tmp/mailpipe-demo
	echo 'Hello from mailpipe: composed, then delivered.' \
	  | ./target/release/mcompose -f me@localhost.localdomain -t you@localhost.localdomain -s 'hello from mailpipe' \
	  | ./target/release/mdeliver /tmp/mailpipe-demo/Maildir -v

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
	for f in man/*.5; do [ -e "$$f" ] && install -m 644 "$$f" $(MANDIR)/man5/ || true; done
	for f in man/*.7; do [ -e "$$f" ] && install -m 644 "$$f" $(MANDIR)/man7/ || true; done
	@echo "note: Debian's mblaze installs a different mdeliver as /usr/bin/mdeliver, and cron and"
	@echo "      Postfix search only /usr/bin and /bin: call ours as $(PREFIX)/bin/mdeliver."

uninstall:
	for t in $(TOOLS); do \
	  rm -f $(BINDIR)/$$t $(MANDIR)/man1/$$t.1 $(BASHDIR)/$$t $(ZSHDIR)/_$$t $(FISHDIR)/$$t.fish; \
	done
	rm -f $(MANDIR)/man5/mailpipe-*.5 $(MANDIR)/man7/mailpipe.7

clean:
	$(CARGO) clean
