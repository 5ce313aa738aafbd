//! MISTY1 (RFC 2994), the 64-bit block cipher with a 128-bit key that STS calls EA11.
//!
//! This is the 8-round MISTY1 of RFC 2994 ("A Description of the MISTY1
//! Encryption Algorithm"): key schedule, functions FI, FO, FL and FLINV, and
//! the encryption and decryption orders given there.
//!
//! STS (IEC 62055-41) encryption algorithm EA11 uses MISTY1 with the 16-byte
//! output of DKGA04 as the key (byte 0 first, as RFC 2994's `K[0]`) and the
//! 64-bit token data block as the plaintext, taken big-endian: the most
//! significant byte of the `u64` is the first byte of the RFC's block.
//!
//! The S-boxes are table lookups indexed by secret-dependent values, as in
//! any table-driven MISTY1; the implementation does not claim to be free of
//! cache-timing leaks.

use zeroize::{Zeroize, ZeroizeOnDrop};

mod consts; // S7 and S9 tables from RFC 2994.

use consts::{S7, S9};

/// MISTY1 with an expanded 128-bit key.
///
/// Holds the expanded key of RFC 2994: the eight key words `K[0..8]` (the
/// RFC's `EK[0..8]`) and the eight derived words `K'[0..8]` (`EK[8..16]`).
/// The RFC's `EK[16..32]` are the 9-bit and 7-bit halves of `K'` and are
/// taken apart where they are used. The expanded key is wiped on drop, and
/// the [`Debug`](core::fmt::Debug) output never shows it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Misty1 {
    /// `K[i]`: key bytes `2i` and `2i + 1`, big-endian.
    k: [u16; 8],
    /// `K'[i] = FI(K[i], K[(i + 1) % 8])`.
    kp: [u16; 8],
}

/// Function FI of RFC 2994: a 16-bit keyed permutation built from S9 and S7.
///
/// The input splits into a 9-bit left part and a 7-bit right part; the key's
/// low 9 bits (`KIij2`) and high 7 bits (`KIij1`) are mixed in between the
/// two S9 layers.
#[inline]
fn fi(x: u16, key: u16) -> u16 {
    let d7 = x & 0x7f;
    let d9 = S9[usize::from(x >> 7) & 0x1ff] ^ d7;
    let d7 = (u16::from(S7[usize::from(d7)]) ^ (d9 & 0x7f)) ^ (key >> 9);
    let d9 = d9 ^ (key & 0x1ff);
    let d9 = S9[usize::from(d9) & 0x1ff] ^ d7;
    (d7 << 9) | d9
}

impl Misty1 {
    /// Expands a 128-bit key given as 16 bytes in the RFC's byte order (key byte 0 first).
    ///
    /// Runs the key schedule of RFC 2994 once, so that encryption and
    /// decryption only read the stored words.
    #[must_use]
    pub fn new(key: &[u8; 16]) -> Self {
        let mut k = [0u16; 8];
        for (word, bytes) in k.iter_mut().zip(key.as_chunks::<2>().0) {
            *word = u16::from_be_bytes(*bytes);
        }
        let kp = core::array::from_fn(|i| fi(k[i & 7], k[(i + 1) & 7]));
        let cipher = Self { k, kp };
        k.zeroize();
        cipher
    }

    /// Encrypts one block. The block is the 8 bytes of RFC 2994 read as a big-endian u64
    /// (so RFC plaintext 0123456789abcdef is 0x0123_4567_89ab_cdef).
    ///
    /// Follows the RFC's eight rounds: `D0` is the high half, `D1` the low
    /// half, and the ciphertext is `(D1 << 32) | D0`.
    #[must_use]
    pub fn encrypt_block(&self, block: u64) -> u64 {
        let mut d0 = (block >> 32) as u32;
        let mut d1 = block as u32;

        // Rounds 0 and 1.
        d0 = self.fl::<0>(d0);
        d1 = self.fl::<1>(d1);
        d1 ^= self.fo::<0>(d0);
        d0 ^= self.fo::<1>(d1);
        // Rounds 2 and 3.
        d0 = self.fl::<2>(d0);
        d1 = self.fl::<3>(d1);
        d1 ^= self.fo::<2>(d0);
        d0 ^= self.fo::<3>(d1);
        // Rounds 4 and 5.
        d0 = self.fl::<4>(d0);
        d1 = self.fl::<5>(d1);
        d1 ^= self.fo::<4>(d0);
        d0 ^= self.fo::<5>(d1);
        // Rounds 6 and 7.
        d0 = self.fl::<6>(d0);
        d1 = self.fl::<7>(d1);
        d1 ^= self.fo::<6>(d0);
        d0 ^= self.fo::<7>(d1);
        // Final FL layer.
        d0 = self.fl::<8>(d0);
        d1 = self.fl::<9>(d1);

        (u64::from(d1) << 32) | u64::from(d0)
    }

    /// Inverse of encrypt_block.
    ///
    /// Runs the rounds in reverse order with FLINV in place of FL, as RFC
    /// 2994 describes for decryption.
    #[must_use]
    pub fn decrypt_block(&self, block: u64) -> u64 {
        let mut d0 = block as u32;
        let mut d1 = (block >> 32) as u32;

        d0 = self.flinv::<8>(d0);
        d1 = self.flinv::<9>(d1);
        // Rounds 7 and 6.
        d0 ^= self.fo::<7>(d1);
        d1 ^= self.fo::<6>(d0);
        d0 = self.flinv::<6>(d0);
        d1 = self.flinv::<7>(d1);
        // Rounds 5 and 4.
        d0 ^= self.fo::<5>(d1);
        d1 ^= self.fo::<4>(d0);
        d0 = self.flinv::<4>(d0);
        d1 = self.flinv::<5>(d1);
        // Rounds 3 and 2.
        d0 ^= self.fo::<3>(d1);
        d1 ^= self.fo::<2>(d0);
        d0 = self.flinv::<2>(d0);
        d1 = self.flinv::<3>(d1);
        // Rounds 1 and 0.
        d0 ^= self.fo::<1>(d1);
        d1 ^= self.fo::<0>(d0);
        d0 = self.flinv::<0>(d0);
        d1 = self.flinv::<1>(d1);

        (u64::from(d0) << 32) | u64::from(d1)
    }

    /// Function FO of RFC 2994 for round `R` (0..=7): three FI layers in a Feistel network.
    ///
    /// Uses `KOi1..KOi4 = K[R], K[R+2], K[R+7], K[R+4]` and
    /// `KIi1..KIi3 = K'[R+5], K'[R+1], K'[R+3]` (indices mod 8).
    #[inline]
    fn fo<const R: usize>(&self, x: u32) -> u32 {
        let mut t0 = (x >> 16) as u16;
        let mut t1 = x as u16;
        t0 = fi(t0 ^ self.k[R % 8], self.kp[(R + 5) % 8]) ^ t1;
        t1 = fi(t1 ^ self.k[(R + 2) % 8], self.kp[(R + 1) % 8]) ^ t0;
        t0 = fi(t0 ^ self.k[(R + 7) % 8], self.kp[(R + 3) % 8]) ^ t1;
        t1 ^= self.k[(R + 4) % 8];
        (u32::from(t1) << 16) | u32::from(t0)
    }

    /// The two subkeys `(KLi1, KLi2)` of FL/FLINV number `L` (0..=9).
    ///
    /// For even `L = 2i`: `(K[i], K'[i+6])`; for odd `L = 2i + 1`:
    /// `(K'[i+2], K[i+4])` (indices mod 8).
    #[inline]
    fn fl_keys<const L: usize>(&self) -> (u16, u16) {
        let i = L / 2;
        if L.is_multiple_of(2) {
            (self.k[i % 8], self.kp[(i + 6) % 8])
        } else {
            (self.kp[(i + 2) % 8], self.k[(i + 4) % 8])
        }
    }

    /// Function FL of RFC 2994, number `L` (0..=9): the key-dependent linear layer.
    #[inline]
    fn fl<const L: usize>(&self, x: u32) -> u32 {
        let (kl1, kl2) = self.fl_keys::<L>();
        let mut d0 = (x >> 16) as u16;
        let mut d1 = x as u16;
        d1 ^= d0 & kl1;
        d0 ^= d1 | kl2;
        (u32::from(d0) << 16) | u32::from(d1)
    }

    /// Function FLINV of RFC 2994, number `L` (0..=9): the inverse of FL number `L`.
    #[inline]
    fn flinv<const L: usize>(&self, x: u32) -> u32 {
        let (kl1, kl2) = self.fl_keys::<L>();
        let mut d0 = (x >> 16) as u16;
        let mut d1 = x as u16;
        d0 ^= d1 | kl2;
        d1 ^= d0 & kl1;
        (u32::from(d0) << 16) | u32::from(d1)
    }
}

impl core::fmt::Debug for Misty1 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Misty1").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::Misty1;
    use core::fmt::Write;

    /// Key of the RFC 2994 test data.
    const RFC_KEY: [u8; 16] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ];

    /// Key of the STS EA11 test vector.
    const STS_KEY: [u8; 16] = [
        0xF9, 0x4B, 0x6E, 0xD3, 0x53, 0xC3, 0xBF, 0xDB, 0x11, 0x3E, 0x2D, 0x3A, 0x7E, 0xA3, 0xC4,
        0x1D,
    ];

    #[test]
    fn rfc2994_first_block() {
        let c = Misty1::new(&RFC_KEY);
        assert_eq!(
            c.encrypt_block(0x0123_4567_89ab_cdef),
            0x8b1d_a5f5_6ab3_d07c
        );
        assert_eq!(
            c.decrypt_block(0x8b1d_a5f5_6ab3_d07c),
            0x0123_4567_89ab_cdef
        );
    }

    #[test]
    fn rfc2994_second_block() {
        let c = Misty1::new(&RFC_KEY);
        assert_eq!(
            c.encrypt_block(0xfedc_ba98_7654_3210),
            0x04b6_8240_b13b_e95d
        );
        assert_eq!(
            c.decrypt_block(0x04b6_8240_b13b_e95d),
            0xfedc_ba98_7654_3210
        );
    }

    #[test]
    fn sts_ea11_vector() {
        let c = Misty1::new(&STS_KEY);
        assert_eq!(
            c.encrypt_block(0x0559_982C_0001_2831),
            0x3826_9A8E_5931_9817
        );
        assert_eq!(
            c.decrypt_block(0x3826_9A8E_5931_9817),
            0x0559_982C_0001_2831
        );
    }

    #[test]
    fn clone_behaves_the_same() {
        let c = Misty1::new(&STS_KEY);
        let d = c.clone();
        assert_eq!(
            d.encrypt_block(0x0559_982C_0001_2831),
            0x3826_9A8E_5931_9817
        );
    }

    /// xorshift64: a small deterministic generator for the round-trip test.
    fn xorshift(state: &mut u64) -> u64 {
        let mut x = *state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *state = x;
        x
    }

    #[test]
    fn round_trip_random_keys_and_blocks() {
        let mut state = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..4096 {
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&xorshift(&mut state).to_be_bytes());
            key[8..].copy_from_slice(&xorshift(&mut state).to_be_bytes());
            let c = Misty1::new(&key);
            for _ in 0..4 {
                let p = xorshift(&mut state);
                let e = c.encrypt_block(p);
                assert_eq!(c.decrypt_block(e), p, "key {key:02x?} block {p:016x}");
                assert_eq!(c.encrypt_block(c.decrypt_block(p)), p);
            }
        }
    }

    /// A fixed-capacity `fmt::Write` sink, so the test needs no allocator.
    struct Buf {
        bytes: [u8; 128],
        len: usize,
    }

    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
            self.bytes
                .get_mut(self.len..end)
                .ok_or(core::fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let c = Misty1::new(&STS_KEY);
        let mut buf = Buf {
            bytes: [0; 128],
            len: 0,
        };
        write!(buf, "{c:?}").unwrap();
        let shown = core::str::from_utf8(&buf.bytes[..buf.len]).unwrap();
        assert_eq!(shown, "Misty1 { .. }");
        // No key word, in any common rendering, appears in the output.
        for pair in STS_KEY.chunks_exact(2) {
            let word = u16::from_be_bytes([pair[0], pair[1]]);
            let mut w = Buf {
                bytes: [0; 128],
                len: 0,
            };
            write!(w, "{word} {word:x} {word:X} {} {}", pair[0], pair[1]).unwrap();
            let rendered = core::str::from_utf8(&w.bytes[..w.len]).unwrap();
            for needle in rendered.split(' ') {
                assert!(!shown.contains(needle), "{needle} found in {shown}");
            }
        }
    }
}
