//! Arbitrary bytes, read as UTF-8 (lossily), through the whole offline pipeline:
//! `Entry::Text` -> loader -> yaml -> syntax -> types -> topology. Must never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tosca::loader::{Entry, LoadOptions};
use tosca::{Diagnostics, Inputs, Sources};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let entry = Entry::Text { name: "<fuzz>".into(), text };
    let options = LoadOptions { allow_fetch: false, ..LoadOptions::default() };
    let compiled = tosca::compile(&entry, &options, &Inputs::new(), Diagnostics::new(), Sources::new());
    std::hint::black_box(compiled.has_errors());
});
