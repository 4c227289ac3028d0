//! cargo-afl target: `mailpipe::fuzz::rfc2047`, where the checks live (src/fuzz.rs).
fn main() {
    afl::fuzz!(|data: &[u8]| mailpipe::fuzz::rfc2047(data));
}
