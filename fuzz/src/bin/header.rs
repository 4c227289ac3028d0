//! cargo-afl target: `mailpipe::fuzz::header`, where the checks live (src/fuzz.rs).
fn main() {
    afl::fuzz!(|data: &[u8]| mailpipe::fuzz::header(data));
}
