//! cargo-afl target: `mailpipe::fuzz::smtp_reply`, where the checks live (src/fuzz.rs).
fn main() {
    afl::fuzz!(|data: &[u8]| mailpipe::fuzz::smtp_reply(data));
}
