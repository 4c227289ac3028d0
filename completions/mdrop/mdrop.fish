complete -c mdrop -l maildrop -d 'The maildrop directory (it must be owned by another user, belong to mdrop\'s effective group and have mode 1730)' -r -F
complete -c mdrop -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mdrop -s V -l version -d 'Print version'
