complete -c mrelay -s f -d 'Envelope sender address; <> or an empty one for the null sender [default: the login name at this host\'s name]' -r
complete -c mrelay -s N -d 'DSN: when the sender wants a report (never, or a list of success, failure, delay)' -r
complete -c mrelay -s R -d 'DSN: return the full message or only its headers in a report (full, hdrs)' -r
complete -c mrelay -s V -d 'DSN: envelope identifier for reports' -r
complete -c mrelay -l flush -d 'Try every waiting entry now, due or not, or only entry ID' -r
complete -c mrelay -l delete -d 'Delete entry ID from the queue, for good (no report is sent)' -r
complete -c mrelay -l hold -d 'Put entry ID on hold: it is never tried until released' -r
complete -c mrelay -l release -d 'Release entry ID from hold' -r
complete -c mrelay -l check -d 'Print what would happen to mail for DOMAIN: its MX hosts, DNSSEC status, TLSA records, MTA-STS policy and the TLS each host requires; nothing is sent' -r
complete -c mrelay -l dkim -d 'Sign mail from DOMAIN with the PEM key in KEYFILE, published at SELECTOR._domainkey.DOMAIN (DKIM, RFC 6376; repeatable; added to the configuration\'s dkim lines)' -r
complete -c mrelay -l dkim-keygen -d 'Print the DNS TXT record that publishes KEYFILE\'s public key for DOMAIN, first creating an Ed25519 key there when the file does not exist; nothing is sent' -r
complete -c mrelay -l tls-report -d 'Write the TLS-RPT reports (RFC 8460 JSON, one line per recipient domain) of DATE (YYYY-MM-DD, UTC) [default: yesterday]; nothing is sent' -r
complete -c mrelay -l queue-dir -d 'The queue directory [default: queue_dir in the configuration, else /var/spool/mailpipe/queue for root, ~/.local/share/mailpipe/queue for others]' -r -F
complete -c mrelay -s C -l config -d 'Read configuration from FILE only [default: /etc/mailpipe/config, then ~/.config/mailpipe/config]' -r -F
complete -c mrelay -l hostname -d 'This host\'s name, for EHLO, reports and the MX loop check (repeatable: the others are more names of this host) [default: relay_hostname, else this host\'s FQDN]' -r
complete -c mrelay -l dns-server -d 'Ask this DNS server only (split horizon, tests) [default: the nameservers of /etc/resolv.conf]' -r
complete -c mrelay -l mx-port -d 'Connect to every mail exchanger on this port (and to route hosts without one) [default: 25]' -r
complete -c mrelay -l delay-warning -d 'Report a recipient still waiting TIME after arrival to the sender as delayed, once (seconds, or a number with s, m, h or d; 0: never) [default: relay_delay_warning, else 0]' -r
complete -c mrelay -l syslog-socket -d 'The syslog socket (implies --syslog) [default: /dev/log]' -r -F
complete -c mrelay -s i -d 'Accepted and ignored (also -oi), for sendmail\'s callers: the message always ends at the end of input'
complete -c mrelay -l queue-only -d 'Queue the message without trying it (sendmail\'s -odq)'
complete -c mrelay -s q -l queue-run -d 'Run the queue once: every entry that is due (for cron)'
complete -c mrelay -l daemon -d 'Run the queue continuously, new entries at once, until SIGTERM'
complete -c mrelay -l list -d 'List the queue (mailq): each entry, its recipients and what became of them'
complete -c mrelay -l json -d 'With --list: one JSON array, for scripts'
complete -c mrelay -l send -d 'With --tls-report: queue each report to the mailto: addresses of its domain\'s _smtp._tls TXT record (RFC 8460 section 3) instead of writing it'
complete -c mrelay -l allow-private-targets -d 'Allow mail exchangers and address literals in loopback and private ranges (tests, split horizon)'
complete -c mrelay -l syslog -d 'Log to syslog (facility mail) instead of standard error'
complete -c mrelay -s v -l verbose -d 'Print the SMTP dialogue on standard error'
complete -c mrelay -l version -d 'Print version'
complete -c mrelay -s h -l help -d 'Print help (see more with \'--help\')'
