//! mfetch: fetch mail from a POP3 server into a Maildir, never twice, never lost. All logic
//! is in `mailpipe::cmd::mfetch`.
fn main() -> std::process::ExitCode {
    mailpipe::cmd::mfetch::main()
}
