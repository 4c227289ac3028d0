//! maccess: serve Maildirs over POP3. All logic is in `mailpipe::cmd::maccess`.
fn main() -> std::process::ExitCode {
    mailpipe::run::main("maccess", mailpipe::cmd::maccess::run)
}
