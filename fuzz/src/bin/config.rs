//! cargo-afl target: `mailpipe::fuzz::config`, where the checks live (src/fuzz.rs).
fn main() {
    afl::fuzz!(|data: &[u8]| mailpipe::fuzz::config(data));
}
