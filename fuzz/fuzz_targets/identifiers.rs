//! The identifier parsers on arbitrary text: they never panic, and what they accept prints as
//! text that parses back to the same value (exactly the input, where the format is fixed).

#![no_main]

use core::{fmt::Display, str::FromStr};

use libfuzzer_sys::fuzz_target;
use sts_core::{
    BaseDate, CurrencyAmount, DecoderKey, EncryptionAlgorithm, KeyExpiryNumber, KeyRevisionNumber,
    KeyType, MeterPan, SupplyGroupCode, TariffIndex, TokenNumber, UtcMinute,
};

/// `Ok(x)` implies `x.to_string()` parses back to `x`; returns the printed form.
fn round_trip<T>(text: &str) -> Option<String>
where
    T: FromStr + Display + PartialEq + core::fmt::Debug,
    T::Err: core::fmt::Debug,
{
    let value = text.parse::<T>().ok()?;
    let printed = value.to_string();
    match printed.parse::<T>() {
        Ok(again) => assert_eq!(again, value, "{text:?} -> {printed:?}"),
        Err(e) => panic!("{text:?} parsed as {value:?}, whose text {printed:?} does not: {e:?}"),
    }
    Some(printed)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    // Fixed formats: what parses is exactly what prints.
    if let Some(printed) = round_trip::<MeterPan>(text) {
        assert_eq!(printed, text);
        let pan: MeterPan = text.parse().unwrap();
        assert_eq!(MeterPan::from_drn(pan.drn()), Ok(pan));
    }
    if let Some(printed) = round_trip::<SupplyGroupCode>(text) {
        assert_eq!(printed, text);
    }
    // One or two digits, printed as two.
    if let Some(printed) = round_trip::<TariffIndex>(text) {
        assert_eq!(printed.len(), 2);
        assert!(printed.ends_with(text));
    }
    round_trip::<KeyRevisionNumber>(text);
    round_trip::<KeyExpiryNumber>(text);
    round_trip::<KeyType>(text);
    round_trip::<BaseDate>(text);
    round_trip::<EncryptionAlgorithm>(text);
    round_trip::<UtcMinute>(text);
    if let Some(printed) = round_trip::<TokenNumber>(text) {
        assert_eq!(printed.len(), 20);
    }

    // Currency: parsing rounds to the 20-bit encoding; printing shows that encoding exactly.
    if let Ok(amount) = CurrencyAmount::parse(text) {
        let printed = amount.to_string();
        let again = CurrencyAmount::parse(&printed);
        assert_eq!(again, Ok(amount), "{text:?} -> {printed:?}");
    }

    // Decoder keys have no Display: hex out must read back to the same key.
    if let Ok(key) = DecoderKey::from_hex(text) {
        let mut buf = [0u8; 32];
        let hex = key.expose_hex(&mut buf);
        assert_eq!(DecoderKey::from_hex(hex), Ok(key));
    }
});
