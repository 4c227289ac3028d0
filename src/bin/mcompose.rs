//! mcompose: compose one message. All logic is in `mailpipe::cmd::mcompose`.
fn main() -> std::process::ExitCode {
    mailpipe::run::main("mcompose", mailpipe::cmd::mcompose::run)
}
