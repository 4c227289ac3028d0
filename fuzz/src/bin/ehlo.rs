//! cargo-afl target: `mailpipe::fuzz::ehlo`, where the checks live (src/fuzz.rs).
fn main() {
    afl::fuzz!(|data: &[u8]| mailpipe::fuzz::ehlo(data));
}
