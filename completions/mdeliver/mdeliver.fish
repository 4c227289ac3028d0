complete -c mdeliver -s f -l sender -d 'Envelope sender for the Return-Path: header [default: $SENDER]' -r
complete -c mdeliver -s a -l recipient -d 'Envelope recipient for the Delivered-To: header and loop detection [default: $RECIPIENT, else $ORIGINAL_RECIPIENT]' -r
complete -c mdeliver -l folder -d 'Deliver into the Maildir++ folder NAME (.NAME/) instead of the inbox' -r
complete -c mdeliver -l flags -d 'Store the message in cur/ with these Maildir flags (e.g. S for seen)' -r
complete -c mdeliver -l max-size -d 'Refuse messages larger than SIZE bytes (suffixes k, M, G) permanently' -r
complete -c mdeliver -s C -l config -d 'Read configuration from FILE only [default: ~/.config/mailpipe/config, /etc/mailpipe/config]' -r -F
complete -c mdeliver -s r -l rules -d 'Filter with the rules in FILE (see mailpipe-rules(5)) [default: the config key rules, else ~/.config/mailpipe/rules]' -r -F
complete -c mdeliver -l dedupe-file -d 'The Message-ID cache for --dedupe (implies --dedupe) [default: MAILDIR/mailpipe-dedupe]' -r -F
complete -c mdeliver -l log -d 'Append one line per message to FILE: which rules matched (file:line) and what was done' -r -F
complete -c mdeliver -l timeout -d 'Kill a command a rule runs (pipe, filter, forward) after SECS seconds [default: 900]' -r
complete -c mdeliver -l no-rules -d 'Ignore every rules file: deliver to the inbox (or --folder)'
complete -c mdeliver -s D -l dedupe -d 'Drop a message whose Message-ID was delivered before (exit 0, nothing stored)'
complete -c mdeliver -s n -l dry-run -d 'Print what would be done, one step a line, and deliver nothing'
complete -c mdeliver -s v -l verbose -d 'Print the path of each delivered file on standard output'
complete -c mdeliver -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mdeliver -s V -l version -d 'Print version'
