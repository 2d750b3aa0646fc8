//! Masking and unmasking of payloads (RFC 6455 section 5.3).
//!
//! PLACEHOLDER: byte-by-byte only; the SIMD paths are being written.

/// XORs `buf` in place with the masking `key`, starting at byte `offset % 4` of the key.
///
/// Masking and unmasking are the same operation. `offset` lets a payload that arrives in
/// pieces be unmasked piece by piece: pass the number of payload bytes already unmasked.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    apply_mask_reference(buf, key, offset);
}

/// The byte-by-byte reference every faster path is tested against.
pub fn apply_mask_reference(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) & 3];
    }
}
