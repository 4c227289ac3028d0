//! cargo-afl target: `mailpipe::fuzz::rules`, where the checks live (src/fuzz.rs).
fn main() {
    afl::fuzz!(|data: &[u8]| mailpipe::fuzz::rules(data));
}
