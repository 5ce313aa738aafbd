//! STA substitution and permutation tables, decimal, index 0 first (`shared/spec/sta-tables.txt`).
//!
//! S1/S2 substitute one 4-bit nibble; P moves input bit i to output bit `P[i]` (bit 0 = least
//! significant). The production tables are those published in public open-source STS
//! implementations; every STS 531 EA07 conformance token reproduces with them. The sample tables
//! are the IEC 62055-41 document's own, used only for its worked example.

#[rustfmt::skip]
pub(super) const PRODUCTION_S1: [u8; 16] = [14, 10, 7, 9, 12, 3, 2, 5, 13, 0, 15, 1, 4, 8, 6, 11];
#[rustfmt::skip]
pub(super) const PRODUCTION_S2: [u8; 16] = [12, 8, 2, 13, 7, 6, 1, 3, 11, 5, 9, 15, 0, 4, 10, 14];
#[rustfmt::skip]
pub(super) const PRODUCTION_P: [u8; 64] = [
    55, 42, 10, 18, 24, 21, 44, 35,  2, 22, 56, 43, 27, 58,  9, 50,
     6, 36, 12, 61, 37, 38, 53, 16, 62,  3,  7,  4, 32, 20, 63, 25,
    51, 52, 54, 33, 49, 19, 46, 29, 48, 31, 23, 30, 41, 28, 13,  5,
    40, 60, 39, 11, 15, 17,  1,  0, 57, 34, 59,  8, 47, 14, 45, 26,
];

#[rustfmt::skip]
pub(super) const SAMPLE_S1: [u8; 16] = [12, 10, 8, 4, 3, 15, 0, 2, 14, 1, 5, 13, 6, 9, 7, 11];
#[rustfmt::skip]
pub(super) const SAMPLE_S2: [u8; 16] = [6, 9, 7, 4, 3, 10, 12, 14, 2, 13, 1, 15, 0, 11, 8, 5];
#[rustfmt::skip]
pub(super) const SAMPLE_P: [u8; 64] = [
    29, 27, 34,  9, 16, 62, 55,  2, 40, 49, 38, 25, 33, 61, 30, 23,
     1, 41, 21, 57, 42, 15,  5, 58, 19, 53, 22, 17, 48, 28, 24, 39,
     3, 60, 36, 14, 11, 52, 54, 12, 31, 51, 10, 26,  0, 45, 37, 43,
    44,  6, 59,  4,  7, 35, 56, 50, 13, 18, 32, 47, 46, 63, 20,  8,
];
