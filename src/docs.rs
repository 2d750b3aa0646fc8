//! The prose documentation of the repository's `docs/` folder, rendered with the API
//! (its Rust examples are compiled as doctests, so they stay true to the code).

#[doc = include_str!("../docs/guide.md")]
pub mod guide {}

#[doc = include_str!("../docs/architecture.md")]
pub mod architecture {}

#[doc = include_str!("../docs/channels.md")]
pub mod channels {}
