//! One module per tool: its clap definition (`Args`), its `run`, and its hand-written man page
//! sections. `src/bin/<tool>.rs` calls `run::main(NAME, cmd::<tool>::run)`; [`pages`] lists
//! every tool for the generated docs.

pub mod mcompose;
pub mod mdeliver;
pub mod mreceive;
pub mod msubmit;

/// Every tool's documentation page, in install order.
pub fn pages() -> Vec<crate::docs::Page> {
    vec![
        mcompose::page(),
        msubmit::page(),
        mreceive::page(),
        mdeliver::page(),
    ]
}
