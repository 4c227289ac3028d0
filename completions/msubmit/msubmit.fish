complete -c msubmit -s f -d 'Envelope sender address (also -r) [default: from in the account, else the From: address]' -r
complete -c msubmit -s F -d 'Full name for the From: header when the message has none' -r
complete -c msubmit -s N -d 'DSN: when the server should report (never, or a list of success, failure, delay)' -r
complete -c msubmit -s R -d 'DSN: return the full message or only its headers in a report (full, hdrs)' -r
complete -c msubmit -s V -d 'DSN: envelope identifier for reports' -r
complete -c msubmit -s a -l account -d 'Use this account of the configuration [default: by the sender address, else "default"]' -r
complete -c msubmit -s C -l config -d 'Read configuration from FILE only [default: ~/.config/mailpipe/config, /etc/mailpipe/config]' -r -F
complete -c msubmit -l host -d 'Server host name or address' -r
complete -c msubmit -l port -d 'Server port [default: 587 for starttls, 465 for implicit, 25 for none]' -r
complete -c msubmit -l tls -d 'TLS: how it starts (starttls, implicit) and how strict it is (none, may, encrypt, verify), one word or a start and a level joined by a comma [default: starttls]' -r -f -a "starttls\t'STARTTLS required, the certificate verified (the default)'
implicit\t'TLS from the first byte (the implicit-TLS port), the certificate verified'
none\t'clear text, even when the server offers TLS'
may\t'STARTTLS when the server offers it, else clear text; no certificate check'
encrypt\t'STARTTLS required, the certificate not checked'
verify\t'the same as starttls'
implicit\,encrypt\t'implicit TLS, the certificate not checked'"
complete -c msubmit -l ca-file -d 'Trust the CA certificates in this PEM file instead of the built-in roots (a server\'s own self-signed certificate too)' -r -F
complete -c msubmit -l fingerprint -d 'Accept only the server certificate with this SHA-256 fingerprint (hex, colons optional)' -r
complete -c msubmit -l tls-server-name -d 'Verify the certificate for this name instead of HOST' -r
complete -c msubmit -l tls-cert-file -d 'Present this client certificate (PEM, with its chain) when the server asks for one' -r -F
complete -c msubmit -l tls-key-file -d 'The private key of the client certificate (PEM)' -r -F
complete -c msubmit -l dkim -d 'Sign the message with DKIM when its From: is at DOMAIN, with the PEM key in KEYFILE published at SELECTOR._domainkey.DOMAIN (instead of the account\'s dkim)' -r
complete -c msubmit -l aliases -d 'Replace recipients without a domain by the addresses this aliases file gives them (msmtp\'s format; empty: none)' -r -F
complete -c msubmit -l source-ip -d 'Connect from this local address (empty: the system\'s choice)' -r
complete -c msubmit -l proxy-host -d 'Connect through this SOCKS5 proxy, which resolves the server\'s name (empty: directly)' -r
complete -c msubmit -l proxy-port -d 'The proxy\'s port [default: 1080]' -r
complete -c msubmit -l user -d 'Log in as USER' -r
complete -c msubmit -l password-command -d 'Command whose first output line is the password (or XOAUTH2 token)' -r
complete -c msubmit -l auth -d 'AUTH mechanism: on (PLAIN, else LOGIN), plain, login, xoauth2, off' -r
complete -c msubmit -l helo -d 'Name to give in EHLO [default: domain in the account, else this host\'s name]' -r
complete -c msubmit -l timeout -d 'Seconds to wait for the server at each step [default: RFC 5321\'s, 2 to 10 minutes]' -r
complete -c msubmit -l log -d 'Append one key=value line per message to FILE' -r -F
complete -c msubmit -l queue-dir -d 'The queue directory [default: queue_dir in the configuration, else ~/.local/share/mailpipe/queue]' -r -F
complete -c msubmit -l refused -d 'A sendmail option we do not support (set by the legacy option rewriting)' -r
complete -c msubmit -s t -d 'Also send to the To, Cc and Bcc addresses of the header (the Resent-To, Resent-Cc and Resent-Bcc ones when any is present); added to the RECIPIENT arguments'
complete -c msubmit -s i -d 'Accepted and ignored (also -oi), for sendmail\'s callers: the message always ends at the end of input, never at a line holding a single dot'
complete -c msubmit -s v -l verbose -d 'Print the SMTP dialogue on standard error (passwords masked)'
complete -c msubmit -l requiretls -d 'REQUIRETLS (RFC 8689): send only over verified TLS to a server that offers REQUIRETLS, and ask every later hop for the same; else fail (69)'
complete -c msubmit -l syslog -d 'Also send the log line to syslog (facility mail)'
complete -c msubmit -l queue -d 'Store the message in the queue instead of sending it (also -odq)'
complete -c msubmit -l queue-on-failure -d 'When sending fails temporarily (server unreachable, 4xx), queue the message instead and exit 0'
complete -c msubmit -l flush -d 'Send every queued message that is due (also -q)'
complete -c msubmit -l list -d 'List the queue (also -bp)'
complete -c msubmit -l smtp-stdio -d 'Speak SMTP on standard input and output and send each message accepted, as sendmail -bs does for MUAs such as Alpine (also -bs)'
complete -c msubmit -s P -l pretend -d 'Print the settings a message would be sent with (account, server, TLS, login, where the password comes from but never the password) and the recipients of the arguments after aliases, then exit without reading or sending anything (msmtp\'s -P)'
complete -c msubmit -s S -l serverinfo -d 'Connect to the server and say EHLO, print its greeting, the TLS session and its certificate (subject, issuer, validity, SHA-256 fingerprint) and what it offers (AUTH methods, SIZE, ...), then quit: no login, nothing sent (msmtp\'s -S)'
complete -c msubmit -l version -d 'Print version'
complete -c msubmit -l newaliases -d 'Rebuild the alias database: newaliases, -bi, -I (set by the legacy option rewriting)'
complete -c msubmit -s h -l help -d 'Print help (see more with \'--help\')'
