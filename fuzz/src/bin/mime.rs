//! cargo-afl target: `mailpipe::fuzz::mime`, where the checks live (src/fuzz.rs).
fn main() {
    afl::fuzz!(|data: &[u8]| mailpipe::fuzz::mime(data));
}
