//! The little DER this crate writes by hand: what rcgen cannot express (a multi-valued RDN),
//! spliced into a certificate rcgen produced.

use rcgen::SigningKey;

use crate::authority::CaError;
use crate::key::KeyPair;

/// One tag-length-value with a definite length.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// PrintableString's alphabet (X.680 §41.4).
fn printable(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b))
}

/// A directory string: PrintableString where it fits, else UTF8String (Go's choice).
pub(crate) fn string(value: &str) -> Vec<u8> {
    tlv(if printable(value) { 0x13 } else { 0x0c }, value.as_bytes())
}

/// Splits DER `bytes` into its top-level elements (each a whole TLV).
fn elements(mut bytes: &[u8]) -> Result<Vec<&[u8]>, CaError> {
    let bad = || CaError::Der("truncated or indefinite-length element");
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let first = *bytes.get(1).ok_or_else(bad)?;
        let (header, len) = if first < 0x80 {
            (2, usize::from(first))
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || bytes.len() < 2 + n {
                return Err(bad());
            }
            (2 + n, bytes[2..2 + n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)))
        };
        let end = header.checked_add(len).filter(|end| *end <= bytes.len()).ok_or_else(bad)?;
        out.push(&bytes[..end]);
        bytes = &bytes[end..];
    }
    Ok(out)
}

/// The content of one TLV (after its header).
fn content(element: &[u8]) -> &[u8] {
    let first = element[1];
    let header = if first < 0x80 { 2 } else { 2 + usize::from(first & 0x7f) };
    &element[header..]
}

/// `certificate` with its subject replaced by `subject` and signed again by `issuer`.
pub(crate) fn resubject(certificate: &[u8], subject: &[u8], issuer: &KeyPair) -> Result<Vec<u8>, CaError> {
    let outer = elements(certificate)?;
    let [cert] = outer.as_slice() else { return Err(CaError::Der("not one certificate")) };
    let parts = elements(content(cert))?;
    let [tbs, algorithm, _signature] = parts.as_slice() else {
        return Err(CaError::Der("a certificate is tbs, algorithm, signature"));
    };
    let mut fields = elements(content(tbs))?;
    // version [0], serial, signature algorithm, issuer, validity, subject, …
    if fields.len() < 7 || fields[0][0] != 0xa0 {
        return Err(CaError::Der("not a v3 TBS certificate"));
    }
    fields[5] = subject;
    let tbs = tlv(0x30, &fields.concat());
    let signature = issuer.sign(&tbs).map_err(|_| CaError::Der("signing the TBS certificate"))?;
    let bit_string = tlv(0x03, &[&[0u8][..], &signature].concat());
    Ok(tlv(0x30, &[tbs.as_slice(), algorithm, &bit_string].concat()))
}

/// PEM armour (64 columns, LF line ends, as Fabric CA writes certificates).
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}
