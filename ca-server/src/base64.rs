//! Standard base64 with padding (RFC 4648 §4), as Go's `base64.StdEncoding`: the `base64`
//! crate's strict engine (a decode refuses missing padding, stray characters and
//! non-canonical trailing bits).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub fn encode(input: &[u8]) -> String {
    STANDARD.encode(input)
}

/// Decodes padded standard base64; `None` for anything else.
pub fn decode(input: &str) -> Option<Vec<u8>> {
    STANDARD.decode(input).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded).as_deref(), Some(plain.as_bytes()));
        }
        assert_eq!(decode("Zm9v!A=="), None);
        assert_eq!(decode("Zm9"), None);
    }
}
