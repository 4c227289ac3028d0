//! mrelay: relay mail to the recipients' mail exchangers. All logic is in `mailpipe::cmd::mrelay`.
fn main() -> std::process::ExitCode {
    mailpipe::cmd::mrelay::main()
}
