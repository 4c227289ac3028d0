//! mdrop: the setgid drop helper that puts a user's message into the system maildrop. All
//! logic is in `mailpipe::cmd::mdrop`.
fn main() -> std::process::ExitCode {
    mailpipe::cmd::mdrop::main()
}
