//! cargo-afl target: `mailpipe::fuzz::inbound`, where the checks live (src/fuzz.rs).
fn main() {
    afl::fuzz!(|data: &[u8]| mailpipe::fuzz::inbound(data));
}
