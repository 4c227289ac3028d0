//! mreceive: receive mail over SMTP. All logic is in `mailpipe::cmd::mreceive`.
fn main() -> std::process::ExitCode {
    mailpipe::run::main("mreceive", mailpipe::cmd::mreceive::run)
}
