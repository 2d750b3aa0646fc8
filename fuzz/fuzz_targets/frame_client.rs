//! The frame decoder as a client decodes: unmasked server frames, whole and in reads.
//! See `wavecore::fuzzing` (src/fuzzing.rs) for the input layout and what it checks.
#![no_main]
#![forbid(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wavecore::fuzzing::frames(wavecore::internals::Role::Client, data));
