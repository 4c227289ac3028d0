complete -c mcompose -s f -l from -d 'The author [default: config from, else $EMAIL, else $USER at the host name]' -r
complete -c mcompose -s t -l to -d 'Add To: recipients (an address list; repeatable)' -r
complete -c mcompose -s c -l cc -d 'Add Cc: recipients (repeatable)' -r
complete -c mcompose -s b -l bcc -d 'Add Bcc: recipients, kept in the output for msubmit -t to use and remove (repeatable)' -r
complete -c mcompose -s s -l subject -d 'The subject' -r
complete -c mcompose -l reply-to -d 'Add Reply-To: addresses (repeatable)' -r
complete -c mcompose -l in-reply-to -d 'The message-id this message replies to' -r
complete -c mcompose -l references -d 'Message-ids for References: (repeatable)' -r
complete -c mcompose -s H -l header -d 'Add a header field (repeatable)' -r
complete -c mcompose -l body -d 'Read the body from FILE instead of standard input' -r -F
complete -c mcompose -s a -l attach -d 'Attach FILE, with its media type detected or given (repeatable)' -r
complete -c mcompose -l html -d 'Add FILE as the HTML alternative of the text (multipart/alternative)' -r -F
complete -c mcompose -l reply -d 'Reply to the message in MSGFILE ("-" for standard input)' -r -F
complete -c mcompose -l forward -d 'Forward the message in MSGFILE (a file, not "-") as a message/rfc822 attachment' -r -F
complete -c mcompose -l draft -d 'Read header fields, Attach: lines and body from the draft FILE' -r -F
complete -c mcompose -s o -l output -d 'Write the message to FILE (which must not exist; - is standard output) instead of standard output' -r -F
complete -c mcompose -l message-id-domain -d 'The right-hand side of the Message-ID [default: config domain, else the sender\'s domain]' -r
complete -c mcompose -s A -l account -d 'Use this account of the configuration' -r
complete -c mcompose -s C -l config -d 'Read configuration from FILE only [default: ~/.config/mailpipe/config, /etc/mailpipe/config]' -r -F
complete -c mcompose -l 8bit -d 'Send non-ASCII text as 8bit instead of quoted-printable'
complete -c mcompose -l inline -d 'Mark attachments for inline display (Content-Disposition: inline)'
complete -c mcompose -l all -d 'With --reply: reply to all recipients, minus yourself'
complete -c mcompose -s e -l edit -d 'Edit the draft with $VISUAL or $EDITOR before building the message'
complete -c mcompose -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mcompose -s V -l version -d 'Print version'
