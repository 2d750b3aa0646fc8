//! Run-time choice of the masking path, made once and cached.

use std::sync::OnceLock;

use super::{MaskFn, apply_mask_scalar};

/// The path [`super::apply_mask`] calls, chosen on first use.
static BEST: OnceLock<MaskFn> = OnceLock::new();

/// The fastest path this CPU can run.
#[inline]
pub(super) fn best() -> MaskFn {
    *BEST.get_or_init(|| {
        simd_paths()
            .into_iter()
            .find_map(|(_, f)| f)
            .unwrap_or(apply_mask_scalar)
    })
}

/// The SIMD masking paths built for this architecture, by name, fastest first, each
/// `None` where this CPU cannot run it.
///
/// For tests and benchmarks that want to call each path directly. Use
/// [`super::apply_mask`] in real code.
pub fn simd_paths() -> Vec<(&'static str, Option<MaskFn>)> {
    #[allow(unused_mut)] // No pushes on architectures without a SIMD path.
    let mut paths: Vec<(&'static str, Option<MaskFn>)> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        paths.push(("avx2", super::x86::avx2()));
        paths.push(("sse2", super::x86::sse2()));
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    paths.push(("neon", super::neon::neon()));
    paths
}
