//! cargo-afl target: `mailpipe::fuzz::pop3_command`, where the checks live (src/fuzz.rs).
fn main() {
    afl::fuzz!(|data: &[u8]| mailpipe::fuzz::pop3_command(data));
}
