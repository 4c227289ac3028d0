//! msubmit: submit a message over SMTP with sendmail's interface. All logic is in `mailpipe::cmd::msubmit`.
fn main() -> std::process::ExitCode {
    mailpipe::cmd::msubmit::main()
}
