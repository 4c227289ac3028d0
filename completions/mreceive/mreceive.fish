complete -c mreceive -s l -l listen -d 'Listen on HOST:PORT instead of serving stdin/stdout (repeatable; [::1]:PORT for IPv6; a name such as localhost listens on each of its addresses)' -r
complete -c mreceive -s d -l domain -d 'Accept mail for DOMAIN (repeatable, or comma-separated)' -r
complete -c mreceive -s u -l users -d 'Accept only these users: a file with one name a line, or a directory whose entries are the users' -r -F
complete -c mreceive -s m -l maildir-base -d 'Deliver built in, into DIR/USER/Maildir (with --deliver-command: set MAILDIR to it)' -r -F
complete -c mreceive -s c -l deliver-command -d 'Run COMMAND (words split as a shell would, but no shell) once per recipient with the message on stdin, ${user} and ${recipient} in it replaced (needs --maildir-base unless it names one of them)' -r
complete -c mreceive -l queue-dir -d 'The outgoing queue for authenticated mail [default: ~/.local/share/mailpipe/queue]; given, local recipients that fail for now while others succeed wait there too' -r -F
complete -c mreceive -l route -d 'How authenticated mail for other domains leaves the queue: mx (mrelay looks the domains up) or account[:NAME] (msubmit --flush sends it through an account\'s server)' -r
complete -c mreceive -s p -l passwords -d 'Password file for AUTH (user:$6$… lines; see FILES)' -r -F
complete -c mreceive -l sender-login-map -d 'Which MAIL FROM addresses each login may use besides its own: ADDRESS LOGIN[,LOGIN...] lines, @DOMAIN for a whole domain (see FILES)' -r -F
complete -c mreceive -l trusted-sender-login -d 'A login that may use any MAIL FROM address, such as a relay\'s account (repeatable)' -r
complete -c mreceive -l tls-cert -d 'TLS certificate chain (PEM) for STARTTLS' -r -F
complete -c mreceive -l tls-key -d 'TLS private key (PEM)' -r -F
complete -c mreceive -l auth-failure-delay -d 'Wait SECS seconds times the failures so far before answering a failed AUTH' -r
complete -c mreceive -l hostname -d 'Our host name for the greeting and Received: [default: this host\'s name]' -r
complete -c mreceive -l max-size -d 'Refuse messages larger than SIZE bytes (suffixes k, M, G)' -r
complete -c mreceive -l max-recipients -d 'Accept at most N recipients per message' -r
complete -c mreceive -l max-received -d 'Refuse a message with more than N Received: headers as a mail loop' -r
complete -c mreceive -l max-sessions -d 'With --listen: serve at most N sessions at once (more get 421)' -r
complete -c mreceive -l client-connection-count-limit -d 'With --listen: at most N sessions at once from one client address (more are refused, 421 4.7.0 in SMTP, -ERR [SYS/TEMP] in POP3; 0: no limit)' -r
complete -c mreceive -l client-connection-rate-limit -d 'With --listen: at most N connections a minute from one client address (more are refused as above; 0: no limit)' -r
complete -c mreceive -l client-limit-exceptions -d 'With --listen: client networks the two limits above do not apply to (repeatable, or comma-separated; ADDRESS or ADDRESS/BITS; none by default, loopback included)' -r
complete -c mreceive -l backlog -d 'With --listen: the listen queue\'s length [default: the system\'s limit, /proc/sys/net/core/somaxconn]' -r
complete -c mreceive -l stress-timeout -d 'With --listen, while 90% of --max-sessions are taken: give up on a client that sends nothing (in SMTP: or sends no message) for SECONDS' -r
complete -c mreceive -l timeout -d 'Give up on a client that sends nothing for SECONDS' -r
complete -c mreceive -l syslog-socket -d 'The syslog socket (implies --syslog) [default: /dev/log]' -r -F
complete -c mreceive -l submission -d 'Submission role: MAIL requires AUTH first'
complete -c mreceive -l tls-on-connect -d 'Start TLS at once, before the greeting (port 465, RFC 8314)'
complete -c mreceive -l insecure-auth -d 'Allow AUTH without TLS (for tests; passwords cross the network in the clear)'
complete -c mreceive -l normalize-line-ends -d 'Take bare CR and bare LF in messages as line ends instead of refusing the message'
complete -c mreceive -l syslog -d 'Log to syslog (facility mail) instead of standard error'
complete -c mreceive -l hash-password -d 'Read a password on stdin and print its SHA512-CRYPT hash for the password file'
complete -c mreceive -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mreceive -s V -l version -d 'Print version'
