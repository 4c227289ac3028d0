//! cargo-afl target: `mailpipe::fuzz::address`, where the checks live (src/fuzz.rs).
fn main() {
    afl::fuzz!(|data: &[u8]| mailpipe::fuzz::address(data));
}
