//! permessage-deflate's inflater behind the frame decoder (server side): arbitrary
//! compressed payloads, and a round trip. See `wavecore::fuzzing` (src/fuzzing.rs).
#![no_main]
#![forbid(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wavecore::fuzzing::inflate(data));
