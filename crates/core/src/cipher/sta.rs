//! EA07, the Standard Transfer Algorithm (STA): a 64-bit substitution-permutation cipher with
//! a 64-bit key (STS.md section 7).
//!
//! Encryption: `k = ror64(!key, 12)`; then 16 rounds of (substitute nibble `n` through S2 when
//! bit `4n+3` of `k` is 1, else S1; move input bit `i` to output bit `P[i]`; `k = rol64(k, 1)`).
//! Decryption runs the inverse steps in reverse order. There is no key XOR.
//!
//! The tables are a parameter: [`StaTables::PRODUCTION`] (what real meters use, the default) and
//! [`StaTables::SAMPLE`] (the IEC document's worked example only). [`StaTables::new`] checks
//! that a custom table set is a valid permutation and pair of bijections.

mod consts;

use core::fmt;

/// One set of STA tables, expanded at compile time into per-byte lookup tables.
///
/// Encryption combines substitution and permutation: for each byte position `j` of the state,
/// the two key bits that select its nibbles' S-boxes, and each byte value, the table holds the
/// permuted contribution of the substituted byte, so a round is 8 lookups and 7 ORs.
pub struct StaTables {
    /// `encrypt[j][selector][byte]`: permuted, substituted byte `j`.
    encrypt: [[[u64; 256]; 4]; 8],
    /// `inverse_p[j][byte]`: the inverse permutation's contribution of byte `j`.
    inverse_p: [[u64; 256]; 8],
    /// `inverse_s[selector][byte]`: a byte through the inverse S-boxes.
    inverse_s: [[u8; 256]; 4],
}

/// A table set that is not a cipher: an S-box is not a bijection on 0..16 or P is not a
/// permutation of 0..64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidTables;

impl fmt::Display for InvalidTables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("STA tables must be two bijections on 0-15 and a permutation of 0-63")
    }
}

impl core::error::Error for InvalidTables {}

impl StaTables {
    /// The production tables: those of real meters and every STS 531 EA07 vector.
    pub const PRODUCTION: Self = match Self::new(
        &consts::PRODUCTION_S1,
        &consts::PRODUCTION_S2,
        &consts::PRODUCTION_P,
    ) {
        Ok(t) => t,
        Err(_) => panic!("production STA tables are invalid"),
    };

    /// The IEC 62055-41 sample tables: for the document's worked example, never for meters.
    pub const SAMPLE: Self =
        match Self::new(&consts::SAMPLE_S1, &consts::SAMPLE_S2, &consts::SAMPLE_P) {
            Ok(t) => t,
            Err(_) => panic!("sample STA tables are invalid"),
        };

    /// Expands a table set. Usable in `const` context; the result is about 82 KiB, so keep it in
    /// a `static`.
    ///
    /// # Errors
    /// [`InvalidTables`] when the tables cannot be inverted.
    pub const fn new(s1: &[u8; 16], s2: &[u8; 16], p: &[u8; 64]) -> Result<Self, InvalidTables> {
        let Some(s1_inv) = invert_nibbles(s1) else {
            return Err(InvalidTables);
        };
        let Some(s2_inv) = invert_nibbles(s2) else {
            return Err(InvalidTables);
        };
        let Some(p_inv) = invert_permutation(p) else {
            return Err(InvalidTables);
        };
        let mut encrypt = [[[0u64; 256]; 4]; 8];
        let mut inverse_p = [[0u64; 256]; 8];
        let mut inverse_s = [[0u8; 256]; 4];
        let mut byte = 0;
        while byte < 256 {
            let mut sel = 0;
            while sel < 4 {
                let lo_table = if sel & 1 == 1 { s2 } else { s1 };
                let hi_table = if sel & 2 == 2 { s2 } else { s1 };
                let substituted = (hi_table[byte >> 4] << 4) | lo_table[byte & 0xF];
                let lo_inv = if sel & 1 == 1 { &s2_inv } else { &s1_inv };
                let hi_inv = if sel & 2 == 2 { &s2_inv } else { &s1_inv };
                inverse_s[sel][byte] = (hi_inv[byte >> 4] << 4) | lo_inv[byte & 0xF];
                let mut j = 0;
                while j < 8 {
                    encrypt[j][sel][byte] = permute((substituted as u64) << (8 * j), p);
                    j += 1;
                }
                sel += 1;
            }
            let mut j = 0;
            while j < 8 {
                inverse_p[j][byte] = permute((byte as u64) << (8 * j), &p_inv);
                j += 1;
            }
            byte += 1;
        }
        Ok(Self {
            encrypt,
            inverse_p,
            inverse_s,
        })
    }

    /// Encrypts one 64-bit block under a 64-bit decoder key.
    #[must_use]
    #[inline]
    pub fn encrypt(&self, key: u64, block: u64) -> u64 {
        let mut k = (!key).rotate_right(12);
        let mut x = block;
        for _ in 0..16 {
            let mut out = 0;
            for j in 0..8 {
                let byte = ((x >> (8 * j)) & 0xFF) as usize;
                let sel = (((k >> (8 * j + 3)) & 1) | (((k >> (8 * j + 7)) & 1) << 1)) as usize;
                out |= self.encrypt[j][sel][byte];
            }
            x = out;
            k = k.rotate_left(1);
        }
        x
    }

    /// Decrypts one 64-bit block under a 64-bit decoder key.
    #[must_use]
    #[inline]
    pub fn decrypt(&self, key: u64, block: u64) -> u64 {
        let mut k = (!key).rotate_left(3);
        let mut x = block;
        for _ in 0..16 {
            let mut permuted = 0;
            for j in 0..8 {
                permuted |= self.inverse_p[j][((x >> (8 * j)) & 0xFF) as usize];
            }
            let mut out = 0;
            for j in 0..8 {
                let byte = ((permuted >> (8 * j)) & 0xFF) as usize;
                let sel = (((k >> (8 * j + 3)) & 1) | (((k >> (8 * j + 7)) & 1) << 1)) as usize;
                out |= u64::from(self.inverse_s[sel][byte]) << (8 * j);
            }
            x = out;
            k = k.rotate_right(1);
        }
        x
    }
}

impl fmt::Debug for StaTables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaTables { .. }")
    }
}

/// Moves bit `i` of `x` to bit `p[i]`.
const fn permute(x: u64, p: &[u8; 64]) -> u64 {
    let mut out = 0;
    let mut i = 0;
    while i < 64 {
        out |= ((x >> i) & 1) << (p[i] & 63);
        i += 1;
    }
    out
}

const fn invert_nibbles(s: &[u8; 16]) -> Option<[u8; 16]> {
    let mut inv = [0xFFu8; 16];
    let mut i = 0;
    while i < 16 {
        let v = s[i] as usize;
        if v >= 16 || inv[v] != 0xFF {
            return None;
        }
        inv[v] = i as u8;
        i += 1;
    }
    Some(inv)
}

const fn invert_permutation(p: &[u8; 64]) -> Option<[u8; 64]> {
    let mut inv = [0xFFu8; 64];
    let mut i = 0;
    while i < 64 {
        let v = p[i] as usize;
        if v >= 64 || inv[v] != 0xFF {
            return None;
        }
        inv[v] = i as u8;
        i += 1;
    }
    Some(inv)
}

/// The production tables, expanded once.
pub static PRODUCTION: StaTables = StaTables::PRODUCTION;
/// The IEC sample tables, expanded once.
pub static SAMPLE: StaTables = StaTables::SAMPLE;

#[cfg(test)]
mod tests {
    use super::*;

    /// A straightforward transcription of the round function, to check the table expansion.
    fn reference_encrypt(key: u64, block: u64) -> u64 {
        let mut k = (!key).rotate_right(12);
        let mut x = block;
        for _ in 0..16 {
            let mut s = 0u64;
            for n in 0..16 {
                let nib = ((x >> (4 * n)) & 0xF) as usize;
                let table = if (k >> (4 * n + 3)) & 1 == 1 {
                    &consts::PRODUCTION_S2
                } else {
                    &consts::PRODUCTION_S1
                };
                s |= u64::from(table[nib]) << (4 * n);
            }
            x = permute(s, &consts::PRODUCTION_P);
            k = k.rotate_left(1);
        }
        x
    }

    #[test]
    fn worked_example_dkga02_chain() {
        // STS-detail.md 11.1: DK E653341F9D5BF36F, block 05599863000119E6.
        assert_eq!(
            PRODUCTION.encrypt(0xE653_341F_9D5B_F36F, 0x0559_9863_0001_19E6),
            0x4920_83C0_AE7C_E455
        );
        assert_eq!(
            PRODUCTION.decrypt(0xE653_341F_9D5B_F36F, 0x4920_83C0_AE7C_E455),
            0x0559_9863_0001_19E6
        );
    }

    #[test]
    fn iec_sample_table_example() {
        assert_eq!(
            SAMPLE.encrypt(0x0ABC_12DE_F345_6789, 0x0B19_EB23_0100_C207),
            0xC45E_D161_9406_DF95
        );
        assert_eq!(
            SAMPLE.decrypt(0x0ABC_12DE_F345_6789, 0xC45E_D161_9406_DF95),
            0x0B19_EB23_0100_C207
        );
    }

    #[test]
    fn tables_match_reference_and_invert() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = x.rotate_left(29) ^ 0xA5A5_5A5A_0F0F_F0F0;
            let c = PRODUCTION.encrypt(key, x);
            assert_eq!(c, reference_encrypt(key, x));
            assert_eq!(PRODUCTION.decrypt(key, c), x);
            assert_eq!(SAMPLE.decrypt(key, SAMPLE.encrypt(key, x)), x);
        }
    }

    #[test]
    fn rejects_invalid_tables() {
        let mut s1 = consts::PRODUCTION_S1;
        s1[0] = s1[1];
        assert!(StaTables::new(&s1, &consts::PRODUCTION_S2, &consts::PRODUCTION_P).is_err());
        let mut p = consts::PRODUCTION_P;
        p[5] = 64;
        assert!(StaTables::new(&consts::PRODUCTION_S1, &consts::PRODUCTION_S2, &p).is_err());
    }
}
