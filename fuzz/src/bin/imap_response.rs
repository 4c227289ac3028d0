//! cargo-afl target: `mailpipe::fuzz::imap_response`, where the checks live (src/fuzz.rs).
fn main() {
    afl::fuzz!(|data: &[u8]| mailpipe::fuzz::imap_response(data));
}
