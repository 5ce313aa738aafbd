//! The token CRC: CRC-16/MODBUS over the class, subclass and data bits (STS.md section 2).

/// CRC-16/MODBUS table (reflected polynomial 0xA001), built at compile time.
const TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC-16/MODBUS of `bytes` (init 0xFFFF, reflected, no final xor).
#[must_use]
pub const fn crc16_modbus(bytes: &[u8]) -> u16 {
    let mut crc = 0xFFFFu16;
    let mut i = 0;
    while i < bytes.len() {
        crc = (crc >> 8) ^ TABLE[((crc ^ bytes[i] as u16) & 0xFF) as usize];
        i += 1;
    }
    crc
}

/// The 16-bit CRC field of a token: CRC-16/MODBUS over the 7 bytes whose low 50 bits are
/// `class(2) | subclass(4) | data(44)`, then one byte `0x01` when `currency` (CRC_C, class 0
/// subclasses 4-7), with the result's two bytes swapped.
///
/// ```
/// // IEC 62055-41 worked example: bytes 000B19EB230100 give the field C207.
/// assert_eq!(sts_core::crc::token_crc(0x000B_19EB_2301_00, false), 0xC207);
/// ```
#[must_use]
pub const fn token_crc(class_subclass_data: u64, currency: bool) -> u16 {
    let b = (class_subclass_data & ((1 << 50) - 1)).to_be_bytes();
    let bytes = [b[1], b[2], b[3], b[4], b[5], b[6], b[7], 0x01];
    let crc = crc16_modbus(if currency {
        &bytes
    } else {
        bytes.split_at(7).0
    });
    crc.swap_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_check_value() {
        // CRC-16/MODBUS check value from the CRC catalogue.
        assert_eq!(crc16_modbus(b"123456789"), 0x4B37);
    }

    #[test]
    fn spec_examples() {
        assert_eq!(token_crc(0x05C0_2A55_2710, false), 0x1970);
        assert_eq!(token_crc(0x0559_9863_0001, false), 0x19E6);
        assert_eq!(token_crc(0x004A_2D90_0FF2, false), 0x0FFA);
    }
}
