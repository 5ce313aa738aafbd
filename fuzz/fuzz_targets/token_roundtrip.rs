//! Any data block, sealed and decoded: a block that decodes comes back exactly, and one that
//! does not is refused for its meaning, never for its CRC.
//!
//! Input: byte 0 = class (bits 0-1) and algorithm (bits 2-3: EA07, EA09, EA11, EA07 with the
//! IEC sample tables); byte 1 = subclass (low nibble); bytes 2-7 = the 44 data bits
//! (big-endian); bytes 8-23 = key.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sts_core::{
    DataBlock, DecodeError, DecoderKey, EncryptionAlgorithm, TokenCipher, TokenClass,
    TokenSubclass, cipher::sta::SAMPLE, decode, token::open, token::seal,
};

fuzz_target!(|data: &[u8]| {
    let mut input = [0u8; 24];
    let len = data.len().min(input.len());
    input[..len].copy_from_slice(&data[..len]);

    let class = TokenClass::from_bits(input[0]);
    let subclass = TokenSubclass::from_bits(input[1]);
    let mut data_bytes = [0u8; 8];
    data_bytes[2..].copy_from_slice(&input[2..8]);
    let bits = u64::from_be_bytes(data_bytes) & DataBlock::DATA_MASK;
    let (algorithm, sample_tables) = match (input[0] >> 2) & 3 {
        0 => (EncryptionAlgorithm::Sta, false),
        1 => (EncryptionAlgorithm::Des, false),
        2 => (EncryptionAlgorithm::Misty1, false),
        _ => (EncryptionAlgorithm::Sta, true),
    };
    let key = DecoderKey::from_bytes(&input[8..8 + algorithm.key_len()]).unwrap();
    let cipher = if sample_tables {
        TokenCipher::with_sta_tables(algorithm, &key, &SAMPLE)
    } else {
        TokenCipher::new(algorithm, &key)
    }
    .unwrap();

    let block = DataBlock::new(class, subclass, bits);
    assert!(block.crc_is_valid());
    assert_eq!(block.data(), bits);
    assert_eq!(block.subclass(), subclass);

    let number = seal(block, Some(&cipher)).unwrap();
    assert_eq!(number.class(), class);
    if class == TokenClass::RESERVED {
        assert_eq!(
            decode(number, Some(&cipher)),
            Err(DecodeError::ReservedClass)
        );
        return;
    }
    assert_eq!(open(number, Some(&cipher)), Ok(block));

    match decode(number, Some(&cipher)) {
        Ok(decoded) => {
            assert_eq!(decoded.block, block);
            assert_eq!(decoded.token.to_block(), Ok(block), "{:?}", decoded.token);
            assert_eq!(decoded.token.class(), class);
            assert_eq!(decoded.token.subclass(), subclass);
            assert_eq!(decoded.token.encode(Some(&cipher)), Ok(number));
        }
        Err(e) => assert!(
            !matches!(e, DecodeError::Crc | DecodeError::KeyRequired),
            "{block:?} sealed and opened with one key gave {e:?}"
        ),
    }
});
