complete -c mfetch -s a -l account -d 'Fetch for this account of the configuration only [default: every account with a pop3_host or imap_host]' -r
complete -c mfetch -s C -l config -d 'Read configuration from FILE only [default: ~/.config/mailpipe/config, /etc/mailpipe/config]' -r -F
complete -c mfetch -l pop3 -d 'Fetch from this POP3 server instead of the configuration\'s accounts [default port: 995 with implicit TLS, 110 otherwise]' -r
complete -c mfetch -l imap -d 'Fetch from this IMAP server instead of the configuration\'s accounts [default port: 993 with implicit TLS, 143 otherwise]' -r
complete -c mfetch -l folder -d 'IMAP: fetch this folder (repeatable) [default: the account\'s folders, else INBOX]' -r
complete -c mfetch -l move-to -d 'IMAP: move fetched mail to this folder on the server instead of deleting it' -r
complete -c mfetch -l tls -d 'TLS: how it starts (starttls, implicit) and how strict it is (none, encrypt, verify; may is taken as encrypt: a mailbox\'s password never goes in clear text by chance), one word or a start and a level joined by a comma [default: implicit]' -r
complete -c mfetch -l ca-file -d 'Trust the CA certificates in this PEM file instead of the built-in roots' -r -F
complete -c mfetch -l fingerprint -d 'Accept only the server certificate with this SHA-256 fingerprint (hex, colons optional)' -r
complete -c mfetch -l tls-server-name -d 'Verify the certificate for this name instead of HOST' -r
complete -c mfetch -l user -d 'Log in as this user [default: the account\'s fetch_user or user]' -r
complete -c mfetch -l password-command -d 'Run this command (by sh -c) and use the first line it prints as the password, or the token for xoauth2 and oauthbearer' -r
complete -c mfetch -l auth -d 'How to log in: user (USER/PASS), plain, login, xoauth2, oauthbearer [default: plain when offered, else user]' -r
complete -c mfetch -l maildir -d 'Deliver into this Maildir [default: $MAILDIR, else ~/Maildir]' -r -F
complete -c mfetch -l rules -d 'Filtering rules for the delivery (as mdeliver\'s --rules)' -r -F
complete -c mfetch -l mda -d 'Deliver each message to this command instead (split into words without a shell; %F is the sender, %T the user, each one argument); at least once' -r
complete -c mfetch -l filter -d 'Ask this command about each new message, its header on standard input: exit 0 fetch, 1 delete on the server unfetched, 2 leave it' -r
complete -c mfetch -l max-size -d 'Leave messages larger than SIZE on the server (bytes, or with k, M, G)' -r
complete -c mfetch -l since -d 'Leave messages dated before DATE (YYYY-MM-DD, UTC) on the server' -r
complete -c mfetch -l state-dir -d 'Keep the state (what was fetched) in DIR [default: $XDG_STATE_HOME/mailpipe/mfetch, else ~/.local/state/mailpipe/mfetch]' -r -F
complete -c mfetch -l batch -d 'Messages per batch: one sync round, one state write, one round of deletions' -r
complete -c mfetch -l timeout -d 'Seconds to wait for the server on each step' -r
complete -c mfetch -l interval -d 'Seconds between polls of an account with --daemon' -r
complete -c mfetch -s k -l keep -d 'Leave fetched mail on the server'
complete -c mfetch -s s -l scan -d 'List the new messages (date, from, subject, size) from their headers; fetch nothing'
complete -c mfetch -l daemon -d 'Keep running: fetch every account each --interval (after a failure, again after a backoff doubling up to an hour) until SIGTERM'
complete -c mfetch -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mfetch -s V -l version -d 'Print version'
