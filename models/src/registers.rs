//! Decoding Modbus register words into numbers, as a device profile describes
//! them: data type, byte and word order, scale and offset.
//!
//! Pure and total: every input either decodes or returns a [`DecodeError`];
//! nothing here panics on values that come from a device.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterKind {
    /// Read/write bits (function codes 1, 5, 15).
    Coil,
    /// Read-only bits (function code 2).
    Discrete,
    /// Read/write 16-bit registers (function codes 3, 6, 16).
    Holding,
    /// Read-only 16-bit registers (function code 4).
    Input,
}

impl RegisterKind {
    /// Whether this table holds single bits rather than 16-bit words.
    pub fn is_bit(self) -> bool {
        matches!(self, RegisterKind::Coil | RegisterKind::Discrete)
    }
}

/// How a value is laid out in one or more registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// A single bit: a coil or discrete input, or with [`Field::bit`] one bit of a register.
    Bool,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    /// Fixed-length text, two ASCII characters per register (`length` registers);
    /// `ABCD`/`CDAB` put the first character in the high byte, `BADC`/`DCBA` in the low byte.
    String,
}

impl DataType {
    /// Number of 16-bit registers the type spans (bits count as one).
    pub fn words(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 | DataType::String => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }
}

/// Byte and word order of a multi-register value, named by where bytes A (most
/// significant) to D land: `ABCD` is big-endian throughout (the Modbus norm),
/// `CDAB` swaps the words, `BADC` swaps bytes within words, `DCBA` is fully
/// little-endian. For 64-bit values the pattern extends to four words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum WordOrder {
    #[default]
    #[serde(rename = "ABCD")]
    Abcd,
    #[serde(rename = "BADC")]
    Badc,
    #[serde(rename = "CDAB")]
    Cdab,
    #[serde(rename = "DCBA")]
    Dcba,
}

/// Why a set of registers could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("expected {expected} register(s) for {dtype:?}, got {got}")]
    Length {
        dtype: DataType,
        expected: u16,
        got: usize,
    },
    #[error("bit {0} is out of range for a 16-bit register")]
    Bit(u8),
    #[error("value is not a finite number")]
    NotFinite,
    #[error("value does not fit the data type")]
    OutOfRange,
    #[error("text fields have no numeric value")]
    NotANumber,
}

/// Puts the raw words into big-endian byte order according to `order`.
fn normalise(words: &[u16], order: WordOrder) -> Vec<u8> {
    let swap_words = matches!(order, WordOrder::Cdab | WordOrder::Dcba);
    let swap_bytes = matches!(order, WordOrder::Badc | WordOrder::Dcba);
    let mut out = Vec::with_capacity(words.len() * 2);
    let iter: Box<dyn Iterator<Item = &u16>> = if swap_words {
        Box::new(words.iter().rev())
    } else {
        Box::new(words.iter())
    };
    for w in iter {
        let [hi, lo] = w.to_be_bytes();
        if swap_bytes {
            out.extend_from_slice(&[lo, hi]);
        } else {
            out.extend_from_slice(&[hi, lo]);
        }
    }
    out
}

/// Decodes fixed-length text: printable ASCII, stopping at the first NUL,
/// trailing spaces trimmed. Other bytes become `?`.
pub fn decode_text(words: &[u16], order: WordOrder) -> String {
    let swap = matches!(order, WordOrder::Badc | WordOrder::Dcba);
    let mut s = String::with_capacity(words.len() * 2);
    for w in words {
        let [hi, lo] = w.to_be_bytes();
        let pair = if swap { [lo, hi] } else { [hi, lo] };
        for b in pair {
            if b == 0 {
                return s.trim_end().to_string();
            }
            s.push(if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            });
        }
    }
    s.trim_end().to_string()
}

/// Decodes `words` as `dtype` in `order` into a raw (unscaled) number.
/// `bit` selects one bit of a single register for [`DataType::Bool`].
pub fn decode_words(
    words: &[u16],
    dtype: DataType,
    order: WordOrder,
    bit: Option<u8>,
) -> Result<f64, DecodeError> {
    let expected = dtype.words();
    if words.len() != usize::from(expected) {
        return Err(DecodeError::Length {
            dtype,
            expected,
            got: words.len(),
        });
    }
    let b = normalise(words, order);
    let v = match dtype {
        DataType::Bool => {
            let bit = bit.unwrap_or(0);
            if bit > 15 {
                return Err(DecodeError::Bit(bit));
            }
            f64::from((u16::from_be_bytes([b[0], b[1]]) >> bit) & 1)
        }
        DataType::U16 => f64::from(u16::from_be_bytes([b[0], b[1]])),
        DataType::I16 => f64::from(i16::from_be_bytes([b[0], b[1]])),
        DataType::U32 => f64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        DataType::I32 => f64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        DataType::F32 => f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        DataType::U64 => u64::from_be_bytes(eight(&b)) as f64,
        DataType::I64 => i64::from_be_bytes(eight(&b)) as f64,
        DataType::F64 => f64::from_be_bytes(eight(&b)),
        DataType::String => return Err(DecodeError::NotANumber),
    };
    if v.is_finite() {
        Ok(v)
    } else {
        Err(DecodeError::NotFinite)
    }
}

fn eight(b: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&b[..8]);
    out
}

/// Encodes `value` (raw, before calibration) as `dtype` in `order`: the
/// inverse of [`decode_words`]. Integers are rounded and must fit the type.
pub fn encode_words(value: f64, dtype: DataType, order: WordOrder) -> Result<Vec<u16>, DecodeError> {
    if !value.is_finite() {
        return Err(DecodeError::NotFinite);
    }
    let r = value.round();
    let fits = |lo: f64, hi: f64| {
        if (lo..=hi).contains(&r) {
            Ok(r)
        } else {
            Err(DecodeError::OutOfRange)
        }
    };
    let be: Vec<u8> = match dtype {
        DataType::Bool => (u16::from(value != 0.0)).to_be_bytes().to_vec(),
        DataType::U16 => (fits(0.0, 65535.0)? as u16).to_be_bytes().to_vec(),
        DataType::I16 => (fits(-32768.0, 32767.0)? as i16).to_be_bytes().to_vec(),
        DataType::U32 => (fits(0.0, 4_294_967_295.0)? as u32).to_be_bytes().to_vec(),
        DataType::I32 => (fits(-2_147_483_648.0, 2_147_483_647.0)? as i32)
            .to_be_bytes()
            .to_vec(),
        DataType::U64 => (fits(0.0, 1.8e19)? as u64).to_be_bytes().to_vec(),
        DataType::I64 => (fits(-9.2e18, 9.2e18)? as i64).to_be_bytes().to_vec(),
        DataType::F32 => (value as f32).to_be_bytes().to_vec(),
        DataType::F64 => value.to_be_bytes().to_vec(),
        DataType::String => return Err(DecodeError::NotANumber),
    };
    let words: Vec<u16> = be.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
    // `normalise` is its own inverse: swapping words and bytes twice restores them.
    let bytes = normalise(&words, order);
    Ok(bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect())
}

/// A linear calibration applied after decoding: `value = raw * scale + offset`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    pub scale: f64,
    pub offset: f64,
}

impl Calibration {
    pub fn apply(self, raw: f64) -> f64 {
        raw * self.scale + self.offset
    }

    /// The raw value that calibrates to `value`.
    pub fn invert(self, value: f64) -> f64 {
        (value - self.offset) / self.scale
    }
}

impl fmt::Display for WordOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WordOrder::Abcd => "ABCD",
            WordOrder::Badc => "BADC",
            WordOrder::Cdab => "CDAB",
            WordOrder::Dcba => "DCBA",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(words: &[u16], dtype: DataType, order: WordOrder, expected: f64) {
        let got = decode_words(words, dtype, order, None).expect("decodes");
        assert_eq!(got, expected, "{words:04x?} as {dtype:?} {order}");
    }

    #[test]
    fn sixteen_bit_types() {
        check(&[0xFFFF], DataType::U16, WordOrder::Abcd, 65535.0);
        check(&[0xFFFF], DataType::I16, WordOrder::Abcd, -1.0);
        check(&[0x0201], DataType::U16, WordOrder::Badc, 0x0102 as f64);
    }

    #[test]
    fn thirty_two_bit_orders() {
        let v: u32 = 0x1234_5678;
        check(&[0x1234, 0x5678], DataType::U32, WordOrder::Abcd, f64::from(v));
        check(&[0x3412, 0x7856], DataType::U32, WordOrder::Badc, f64::from(v));
        check(&[0x5678, 0x1234], DataType::U32, WordOrder::Cdab, f64::from(v));
        check(&[0x7856, 0x3412], DataType::U32, WordOrder::Dcba, f64::from(v));
        check(&[0xFFFF, 0xFFFE], DataType::I32, WordOrder::Abcd, -2.0);
    }

    #[test]
    fn floats() {
        let bits = 21.5f32.to_bits();
        let (hi, lo) = ((bits >> 16) as u16, bits as u16);
        check(&[hi, lo], DataType::F32, WordOrder::Abcd, 21.5);
        check(&[lo, hi], DataType::F32, WordOrder::Cdab, 21.5);
        let b = (-1234.5678f64).to_bits();
        let w = [(b >> 48) as u16, (b >> 32) as u16, (b >> 16) as u16, b as u16];
        check(&w, DataType::F64, WordOrder::Abcd, -1234.5678);
        let rev = [w[3], w[2], w[1], w[0]];
        check(&rev, DataType::F64, WordOrder::Cdab, -1234.5678);
    }

    #[test]
    fn sixty_four_bit_integers() {
        check(&[0, 0, 1, 0], DataType::U64, WordOrder::Abcd, 65536.0);
        check(&[0xFFFF; 4], DataType::I64, WordOrder::Abcd, -1.0);
    }

    #[test]
    fn bits_of_a_register() {
        assert_eq!(
            decode_words(&[0b100], DataType::Bool, WordOrder::Abcd, Some(2)),
            Ok(1.0)
        );
        assert_eq!(
            decode_words(&[0b100], DataType::Bool, WordOrder::Abcd, Some(1)),
            Ok(0.0)
        );
        assert_eq!(
            decode_words(&[0], DataType::Bool, WordOrder::Abcd, Some(16)),
            Err(DecodeError::Bit(16))
        );
    }

    #[test]
    fn encoding_inverts_decoding_in_every_order() {
        let cases: [(DataType, f64); 8] = [
            (DataType::U16, 51234.0),
            (DataType::I16, -1234.0),
            (DataType::U32, 3_000_000_123.0),
            (DataType::I32, -2_000_000_123.0),
            (DataType::U64, 9_007_199_254_740_000.0),
            (DataType::I64, -9_007_199_254_740_000.0),
            (DataType::F32, -1234.5),
            (DataType::F64, 98_765.432_1),
        ];
        for (dtype, v) in cases {
            for order in [WordOrder::Abcd, WordOrder::Badc, WordOrder::Cdab, WordOrder::Dcba] {
                let words = encode_words(v, dtype, order).expect("fits");
                assert_eq!(
                    decode_words(&words, dtype, order, None),
                    Ok(v),
                    "{dtype:?} {order}"
                );
            }
        }
        assert_eq!(
            encode_words(70000.0, DataType::U16, WordOrder::Abcd),
            Err(DecodeError::OutOfRange)
        );
        assert_eq!(
            encode_words(-1.0, DataType::U32, WordOrder::Abcd),
            Err(DecodeError::OutOfRange)
        );
    }

    #[test]
    fn text_in_both_byte_orders() {
        let words = [
            u16::from_be_bytes(*b"WL"),
            u16::from_be_bytes(*b"-1"),
            u16::from_be_bytes([b'7', 0]),
        ];
        assert_eq!(decode_text(&words, WordOrder::Abcd), "WL-17");
        let swapped: Vec<u16> = words.iter().map(|w| w.swap_bytes()).collect();
        assert_eq!(decode_text(&swapped, WordOrder::Badc), "WL-17");
        assert_eq!(decode_text(&[u16::from_be_bytes(*b"A ")], WordOrder::Abcd), "A");
        assert_eq!(decode_text(&[0x01FF], WordOrder::Abcd), "??");
    }

    #[test]
    fn wrong_length_and_nan_are_errors() {
        assert!(matches!(
            decode_words(&[1], DataType::U32, WordOrder::Abcd, None),
            Err(DecodeError::Length {
                expected: 2,
                got: 1,
                ..
            })
        ));
        assert_eq!(
            decode_words(&[0x7FC0, 0], DataType::F32, WordOrder::Abcd, None),
            Err(DecodeError::NotFinite)
        );
    }
}
