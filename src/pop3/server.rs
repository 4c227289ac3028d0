//! The POP3 server (maccess): a Maildir served to one client per mailbox.
