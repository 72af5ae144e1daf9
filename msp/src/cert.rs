//! X.509 certificates as the MSP sees them: parsed once into owned facts.

use std::collections::BTreeMap;

use p256::elliptic_curve::scalar::IsHigh;
use sha2::{Digest, Sha256};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::der;
use crate::error::MspError;

/// Fabric CA's attribute extension: its value is raw JSON `{"attrs":{...}}`.
pub const ATTRIBUTE_OID: &str = "1.2.3.4.5.6.7.8.1";

/// The facts of one certificate the MSP needs, extracted once.
#[derive(Debug, Clone)]
pub struct Certificate {
    der: Vec<u8>,
    public_key: Vec<u8>,
    is_p256: bool,
    is_ca: bool,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    subject_key_id: Option<Vec<u8>>,
    authority_key_id: Option<Vec<u8>>,
    serial: Vec<u8>,
    not_before: i64,
    not_after: i64,
    common_name: String,
    organizational_units: Vec<String>,
    attributes: BTreeMap<String, String>,
    subject_dn: String,
    issuer_dn: String,
}

impl Certificate {
    /// Parses the first `CERTIFICATE` block of a PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<Self, MspError> {
        let der = pem_to_der_all(pem)?
            .into_iter()
            .find(|(label, _)| label == "CERTIFICATE")
            .map(|(_, der)| der)
            .ok_or(MspError::MalformedPem)?;
        Self::from_der(der)
    }

    pub fn from_der(der: Vec<u8>) -> Result<Self, MspError> {
        let (rest, cert) =
            X509Certificate::from_der(&der).map_err(|e| MspError::BadCertificate(e.to_string()))?;
        if !rest.is_empty() {
            return Err(MspError::BadCertificate("trailing bytes after certificate".into()));
        }
        let key_bytes = cert.public_key().subject_public_key.data.to_vec();
        let is_p256 = key_bytes.len() == 65 && p256::PublicKey::from_sec1_bytes(&key_bytes).is_ok();
        let mut subject_key_id = None;
        let mut authority_key_id = None;
        let mut attributes = BTreeMap::new();
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => subject_key_id = Some(id.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    authority_key_id = aki.key_identifier.as_ref().map(|id| id.0.to_vec());
                }
                _ if ext.oid.to_id_string() == ATTRIBUTE_OID => {
                    attributes = parse_attributes(ext.value)?;
                }
                _ => {}
            }
        }
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        let organizational_units = cert
            .subject()
            .iter_organizational_unit()
            .filter_map(|ou| ou.as_str().ok().map(str::to_owned))
            .collect();
        Ok(Self {
            public_key: key_bytes,
            is_p256,
            is_ca: cert.is_ca(),
            subject: cert.subject().as_raw().to_vec(),
            issuer: cert.issuer().as_raw().to_vec(),
            subject_key_id,
            authority_key_id,
            serial: cert.raw_serial().to_vec(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            common_name,
            organizational_units,
            attributes,
            subject_dn: go_dn_string(cert.subject()),
            issuer_dn: go_dn_string(cert.issuer()),
            der,
        })
    }

    /// The subject name as Go's `pkix.Name.String()` prints it (RFC 2253 order, most
    /// specific first), e.g. `CN=User1@org1.example.com,OU=client,L=San Francisco,C=US`.
    pub fn subject_dn(&self) -> &str {
        &self.subject_dn
    }

    /// The issuer name, printed like [`Certificate::subject_dn`].
    pub fn issuer_dn(&self) -> &str {
        &self.issuer_dn
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Uncompressed SEC1 point of the subject key.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    pub fn is_p256(&self) -> bool {
        self.is_p256
    }

    pub fn is_ca(&self) -> bool {
        self.is_ca
    }

    pub fn subject_key_id(&self) -> Option<&[u8]> {
        self.subject_key_id.as_deref()
    }

    pub fn authority_key_id(&self) -> Option<&[u8]> {
        self.authority_key_id.as_deref()
    }

    /// Serial number bytes as encoded (big-endian, may carry a leading zero).
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    pub fn serial_hex(&self) -> String {
        let trimmed: &[u8] = {
            let skip = self.serial.iter().take_while(|b| **b == 0).count();
            &self.serial[skip.min(self.serial.len().saturating_sub(1))..]
        };
        hex::encode(trimmed)
    }

    /// Validity bounds in unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    pub fn organizational_units(&self) -> &[String] {
        &self.organizational_units
    }

    /// Fabric CA attributes from extension 1.2.3.4.5.6.7.8.1 (empty when absent).
    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.attributes
    }

    /// Could `issuer` have issued this certificate? Names and key ids must agree and the
    /// signature must verify with the issuer's key.
    pub fn is_issued_by(&self, issuer: &Certificate) -> bool {
        if self.issuer != issuer.subject {
            return false;
        }
        if let (Some(aki), Some(ski)) = (&self.authority_key_id, &issuer.subject_key_id)
            && aki != ski
        {
            return false;
        }
        let (Ok((_, child)), Ok((_, parent))) =
            (X509Certificate::from_der(&self.der), X509Certificate::from_der(&issuer.der))
        else {
            return false;
        };
        child.verify_signature(Some(parent.public_key())).is_ok()
    }

    /// The certificate with its signature re-encoded low-S, as Fabric's MSP "sanitises"
    /// certificates before hashing them into identity ids.
    pub fn sanitized_der(&self) -> Vec<u8> {
        sanitize(&self.der).unwrap_or_else(|| self.der.clone())
    }

    /// SHA-256 of the sanitised certificate: the identity's id within its MSP.
    pub fn id_hash(&self) -> [u8; 32] {
        Sha256::digest(self.sanitized_der()).into()
    }
}

fn sanitize(cert: &[u8]) -> Option<Vec<u8>> {
    let (outer, _) = der::read_tlv(cert)?;
    let (tbs, rest) = der::read_tlv(outer.content)?;
    let (algorithm, rest) = der::read_tlv(rest)?;
    let (bits, _) = der::read_tlv(rest)?;
    let (&unused, signature) = bits.content.split_first()?;
    let parsed = p256::ecdsa::Signature::from_der(signature).ok()?;
    if unused != 0 || !bool::from(parsed.s().is_high()) {
        return None;
    }
    let low = parsed.normalize_s().to_der();
    let mut bit_string = vec![0u8];
    bit_string.extend_from_slice(low.as_bytes());
    let mut body = Vec::with_capacity(cert.len());
    body.extend_from_slice(tbs.raw);
    body.extend_from_slice(algorithm.raw);
    der::write_tlv(&mut body, 0x03, &bit_string);
    let mut out = Vec::with_capacity(body.len() + 4);
    der::write_tlv(&mut out, 0x30, &body);
    Some(out)
}

fn parse_attributes(value: &[u8]) -> Result<BTreeMap<String, String>, MspError> {
    #[derive(serde::Deserialize)]
    struct Attrs {
        attrs: BTreeMap<String, serde_json::Value>,
    }
    let parsed: Attrs = serde_json::from_slice(value)
        .map_err(|e| MspError::BadCertificate(format!("attribute extension: {e}")))?;
    Ok(parsed
        .attrs
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, v)
        })
        .collect())
}

/// Every PEM block of a text as `(label, DER)`. Errors when a block is malformed or
/// when there is no block at all.
pub fn pem_to_der_all(pem: &[u8]) -> Result<Vec<(String, Vec<u8>)>, MspError> {
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        match block {
            Ok(block) => out.push((block.label, block.contents)),
            Err(_) => return Err(MspError::MalformedPem),
        }
    }
    if out.is_empty() {
        return Err(MspError::MalformedPem);
    }
    Ok(out)
}

/// The name as Fabric's `cid` prints it: Go rebuilds the RDN sequence from the parsed
/// name (C, ST, L, STREET, POSTALCODE, O, OU, CN, SERIALNUMBER; several values of one
/// type form one multi-valued RDN; other attribute types are dropped) and prints it in
/// reverse, RDNs joined by `,`, values by `+`, with RFC 2253 escaping.
fn go_dn_string(name: &x509_parser::x509::X509Name<'_>) -> String {
    const ORDER: [(&str, &str); 9] = [
        ("2.5.4.5", "SERIALNUMBER"),
        ("2.5.4.3", "CN"),
        ("2.5.4.11", "OU"),
        ("2.5.4.10", "O"),
        ("2.5.4.17", "POSTALCODE"),
        ("2.5.4.9", "STREET"),
        ("2.5.4.7", "L"),
        ("2.5.4.8", "ST"),
        ("2.5.4.6", "C"),
    ];
    let values = |oid: &str| -> Vec<String> {
        name.iter_attributes()
            .filter(|attr| attr.attr_type().to_id_string() == oid)
            .filter_map(|attr| attr.as_str().ok().map(escape_dn_value))
            .collect()
    };
    ORDER
        .iter()
        .filter_map(|(oid, short)| {
            let found = values(oid);
            // Go keeps a single CN and SERIALNUMBER (the last one parsed).
            let found = if matches!(*short, "CN" | "SERIALNUMBER") {
                found.into_iter().last().into_iter().collect()
            } else {
                found
            };
            (!found.is_empty())
                .then(|| found.iter().map(|v| format!("{short}={v}")).collect::<Vec<_>>().join("+"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn escape_dn_value(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::with_capacity(value.len());
    for (i, &c) in chars.iter().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i + 1 == chars.len() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
