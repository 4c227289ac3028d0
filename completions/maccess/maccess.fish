complete -c maccess -s l -l listen -d 'Listen on HOST:PORT instead of serving stdin/stdout (repeatable; [::1]:PORT for IPv6; a name such as localhost listens on each of its addresses)' -r
complete -c maccess -s m -l maildir-base -d 'Users\' Maildirs are DIR/USER/Maildir (as mreceive -m delivers them)' -r -F
complete -c maccess -s p -l passwords -d 'Password file (user:$6$… lines, mreceive\'s; see FILES)' -r -F
complete -c maccess -l tls-cert -d 'TLS certificate chain (PEM) for STLS and implicit TLS' -r -F
complete -c maccess -l tls-key -d 'TLS private key (PEM)' -r -F
complete -c maccess -l auth-failure-delay -d 'Wait SECS seconds times the failures so far before answering a failed login' -r
complete -c maccess -l hostname -d 'Our host name for the greeting [default: this host\'s name]' -r
complete -c maccess -l max-sessions -d 'With --listen: serve at most N sessions at once (more get -ERR [SYS/TEMP])' -r
complete -c maccess -l timeout -d 'Give up on a client that sends nothing for SECONDS (RFC 1939 §3: at least 600)' -r
complete -c maccess -l client-connection-count-limit -d 'With --listen: at most N sessions at once from one client address (more are refused, 421 4.7.0 in SMTP, -ERR [SYS/TEMP] in POP3; 0: no limit)' -r
complete -c maccess -l client-connection-rate-limit -d 'With --listen: at most N connections a minute from one client address (more are refused as above; 0: no limit)' -r
complete -c maccess -l client-limit-exceptions -d 'With --listen: client networks the two limits above do not apply to (repeatable, or comma-separated; ADDRESS or ADDRESS/BITS; none by default, loopback included)' -r
complete -c maccess -l backlog -d 'With --listen: the listen queue\'s length [default: the system\'s limit, /proc/sys/net/core/somaxconn]' -r
complete -c maccess -l stress-timeout -d 'With --listen, while 90% of --max-sessions are taken: give up on a client that sends nothing (in SMTP: or sends no message) for SECONDS' -r
complete -c maccess -l syslog-socket -d 'The syslog socket (implies --syslog) [default: /dev/log]' -r -F
complete -c maccess -l tls-on-connect -d 'Start TLS at once, before the greeting (port 995, RFC 8314)'
complete -c maccess -l insecure-auth -d 'Allow USER/PASS and AUTH without TLS (for tests; passwords cross the network in the clear)'
complete -c maccess -l syslog -d 'Log to syslog (facility mail) instead of standard error'
complete -c maccess -s h -l help -d 'Print help (see more with \'--help\')'
complete -c maccess -s V -l version -d 'Print version'
