//! Arbitrary text as a token number, decoded under EA07, EA09 and EA11.
//!
//! Input: 16 key bytes (EA07 and EA09 use the first 8), then the text (lossy UTF-8). Parsing
//! must never panic; a number that decodes must re-encode, under the same key, to itself.
//!
//! `fuzz/seeds/token_decode/` holds valid tokens (EA07, EA09, EA11 and class 1) under the key
//! bytes `(i * 0x11) ^ 0xA5`, i = 0..16, so the run starts from numbers whose CRC checks.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sts_core::{DecoderKey, EncryptionAlgorithm, TokenCipher, TokenNumber, decode};

fuzz_target!(|data: &[u8]| {
    let (key, text) = data.split_at_checked(16).unwrap_or((&[0; 16], data));
    let text = String::from_utf8_lossy(text);
    let Ok(number) = text.parse::<TokenNumber>() else {
        return;
    };
    assert!(
        number.get() <= TokenNumber::MAX,
        "{text:?} parsed above 2^66"
    );
    assert_eq!(number.to_string().parse::<TokenNumber>(), Ok(number));

    for algorithm in [
        EncryptionAlgorithm::Sta,
        EncryptionAlgorithm::Des,
        EncryptionAlgorithm::Misty1,
    ] {
        let key = DecoderKey::from_bytes(&key[..algorithm.key_len()]).unwrap();
        let cipher = TokenCipher::new(algorithm, &key).unwrap();
        let Ok(decoded) = decode(number, Some(&cipher)) else {
            continue;
        };
        assert!(decoded.block.crc_is_valid());
        assert_eq!(
            decoded.token.to_block(),
            Ok(decoded.block),
            "EA{algorithm}: {number} decodes to {:?} whose block differs",
            decoded.token
        );
        assert_eq!(
            decoded.token.encode(Some(&cipher)),
            Ok(number),
            "EA{algorithm}: {number} decodes to {:?}, which re-encodes differently",
            decoded.token
        );
    }
});
