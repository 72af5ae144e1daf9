//! The few DER primitives Fabric's wire needs: reading top-level TLVs (certificate
//! sanitising) and writing the block header `SEQUENCE { INTEGER, OCTET STRING, OCTET STRING }`.

/// One DER element: its tag, its full encoding and its content.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub raw: &'a [u8],
    pub content: &'a [u8],
}

/// Reads one DER element from the front of `input`; returns it and the rest.
/// Only definite lengths of up to four bytes are accepted (DER forbids the rest).
pub fn read_tlv(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let header_len = input.len() - rest.len();
    let raw = &input[..header_len + len];
    Some((Tlv { tag, raw, content: &rest[..len] }, &rest[len..]))
}

/// Appends a DER length.
pub fn write_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Appends a DER element with the given tag and content.
pub fn write_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    write_len(out, content.len());
    out.extend_from_slice(content);
}

/// Appends a non-negative DER INTEGER (minimal big-endian, with a leading zero byte
/// when the high bit is set), as Go's `asn1.Marshal(*big.Int)` writes it.
pub fn write_unsigned_integer(out: &mut Vec<u8>, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    let mut content = Vec::with_capacity(9);
    if bytes[skip] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(&bytes[skip..]);
    write_tlv(out, 0x02, &content);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_encode_like_go_asn1() {
        let cases: [(u64, &[u8]); 5] = [
            (0, &[0x02, 0x01, 0x00]),
            (1, &[0x02, 0x01, 0x01]),
            (127, &[0x02, 0x01, 0x7f]),
            (128, &[0x02, 0x02, 0x00, 0x80]),
            (256, &[0x02, 0x02, 0x01, 0x00]),
        ];
        for (value, want) in cases {
            let mut out = Vec::new();
            write_unsigned_integer(&mut out, value);
            assert_eq!(out, want, "value {value}");
        }
    }

    #[test]
    fn long_lengths_round_trip() {
        let content = vec![7u8; 300];
        let mut out = Vec::new();
        write_tlv(&mut out, 0x04, &content);
        assert_eq!(&out[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let (tlv, rest) = read_tlv(&out).expect("reads back");
        assert!(rest.is_empty());
        assert_eq!(tlv.content, &content[..]);
        assert!(read_tlv(&out[..100]).is_none(), "truncated input is rejected");
    }
}
