//! mdeliver: deliver one message into a Maildir. All logic is in `mailpipe::cmd::mdeliver`.
fn main() -> std::process::ExitCode {
    mailpipe::run::main("mdeliver", mailpipe::cmd::mdeliver::run)
}
