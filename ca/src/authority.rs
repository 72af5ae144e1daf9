use std::collections::BTreeMap;
use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, RevokedCertParams, SanType,
    SerialNumber,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::der;
use crate::key::{KeyPair, PublicKey};

/// Fabric CA's attribute extension OID.
const ATTRIBUTE_OID: [u64; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 1];
/// The OU attribute type (2.5.4.11), used for a second OU next to rcgen's own.
const OU_OID: [u64; 4] = [2, 5, 4, 11];

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("private key: {0}")]
    Key(String),
    #[error("a subject can carry at most two OUs, got {0}")]
    TooManyOus(usize),
    #[error("invalid subject alternative name {0:?}")]
    BadSan(String),
    #[error("certificate DER: {0}")]
    Der(&'static str),
}

/// How a subject carries its OUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OuLayout {
    /// cryptogen's: one RDN per OU (at most two).
    #[default]
    OnePerRdn,
    /// Fabric CA's: every OU in one multi-valued RDN, in DER (SET OF) order, e.g.
    /// `OU=org1+OU=client+OU=department1` (`docs/fabric-ca.md`).
    MultiValued,
}

/// A certificate subject: `C, ST, L, O, OU, CN`.
#[derive(Debug, Clone, Default)]
pub struct Name {
    pub country: Option<String>,
    pub state: Option<String>,
    pub locality: Option<String>,
    pub organization: Option<String>,
    pub organizational_units: Vec<String>,
    pub common_name: String,
    pub ou_layout: OuLayout,
}

impl Name {
    /// cryptogen's defaults: US / California / San Francisco.
    pub fn fabric_style(common_name: &str, organization: Option<&str>, ous: &[&str]) -> Self {
        Self {
            country: Some("US".into()),
            state: Some("California".into()),
            locality: Some("San Francisco".into()),
            organization: organization.map(str::to_owned),
            organizational_units: ous.iter().map(|s| (*s).to_owned()).collect(),
            common_name: common_name.to_owned(),
            ou_layout: OuLayout::OnePerRdn,
        }
    }

    /// The subject's DER (an RDNSequence) with the OUs in one multi-valued RDN. Strings are
    /// PrintableString where they fit it and UTF8String otherwise, as Go's encoder writes them.
    fn multi_valued_der(&self) -> Vec<u8> {
        let atv =
            |oid: &[u8], value: &str| der::tlv(0x30, &[der::tlv(0x06, oid), der::string(value)].concat());
        let single = |oid: &[u8], value: &str| der::tlv(0x31, &atv(oid, value));
        let mut rdns = Vec::new();
        for (oid, value) in [
            (&[0x55, 0x04, 0x06][..], &self.country),
            (&[0x55, 0x04, 0x08][..], &self.state),
            (&[0x55, 0x04, 0x07][..], &self.locality),
            (&[0x55, 0x04, 0x0a][..], &self.organization),
        ] {
            if let Some(value) = value {
                rdns.push(single(oid, value));
            }
        }
        if !self.organizational_units.is_empty() {
            let mut ous: Vec<Vec<u8>> =
                self.organizational_units.iter().map(|ou| atv(&[0x55, 0x04, 0x0b], ou)).collect();
            // DER orders a SET OF by the elements' encodings.
            ous.sort();
            rdns.push(der::tlv(0x31, &ous.concat()));
        }
        rdns.push(single(&[0x55, 0x04, 0x03], &self.common_name));
        der::tlv(0x30, &rdns.concat())
    }

    fn to_rcgen(&self) -> Result<DistinguishedName, CaError> {
        let mut dn = DistinguishedName::new();
        if let Some(c) = &self.country {
            dn.push(DnType::CountryName, c.as_str());
        }
        if let Some(st) = &self.state {
            dn.push(DnType::StateOrProvinceName, st.as_str());
        }
        if let Some(l) = &self.locality {
            dn.push(DnType::LocalityName, l.as_str());
        }
        if let Some(o) = &self.organization {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        match self.organizational_units.as_slice() {
            // The real subject is written after signing (`resubject`).
            _ if self.ou_layout == OuLayout::MultiValued => {}
            [] => {}
            [one] => dn.push(DnType::OrganizationalUnitName, one.as_str()),
            [one, two] => {
                dn.push(DnType::OrganizationalUnitName, one.as_str());
                dn.push(DnType::CustomDnType(OU_OID.to_vec()), two.as_str());
            }
            more => return Err(CaError::TooManyOus(more.len())),
        }
        dn.push(DnType::CommonName, self.common_name.as_str());
        Ok(dn)
    }
}

/// A validity window.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From `now` for `days` days.
    pub fn days_from(now: OffsetDateTime, days: i64) -> Self {
        Self { not_before: now, not_after: now + time::Duration::days(days) }
    }
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// An MSP signing identity (enrollment certificate).
    Signing,
    /// A TLS certificate usable as server and client.
    Tls,
}

/// A request for a leaf certificate.
#[derive(Debug, Clone)]
pub struct LeafRequest {
    pub name: Name,
    /// DNS names or IP addresses.
    pub subject_alt_names: Vec<String>,
    /// Fabric CA attributes, written as `{"attrs":{...}}` into 1.2.3.4.5.6.7.8.1.
    pub attributes: Option<BTreeMap<String, String>>,
    pub validity: Validity,
    pub usage: Usage,
    /// The subject's public key (uncompressed SEC1), when the caller holds the private
    /// key; otherwise the CA generates a key pair and returns it.
    pub public_key: Option<Vec<u8>>,
}

impl LeafRequest {
    /// An enrollment certificate (MSP signing identity) for `common_name` with one NodeOU
    /// (`client`, `peer`, `admin`, `orderer`), a key the CA generates, no attributes.
    pub fn enrollment(common_name: &str, node_ou: &str, validity: Validity) -> Self {
        Self {
            name: Name::fabric_style(common_name, None, &[node_ou]),
            subject_alt_names: Vec::new(),
            attributes: None,
            validity,
            usage: Usage::Signing,
            public_key: None,
        }
    }

    pub fn with_attributes(mut self, attributes: BTreeMap<String, String>) -> Self {
        self.attributes = Some(attributes);
        self
    }
}

/// An issued certificate, and its private key when the CA generated it.
#[derive(Debug, Clone)]
pub struct Issued {
    pub certificate_pem: String,
    pub certificate_der: Vec<u8>,
    pub key: Option<KeyPair>,
    pub serial: Vec<u8>,
}

impl Issued {
    /// PKCS#8 PEM of the generated key (empty when the subject brought its own key).
    pub fn key_pem(&self) -> String {
        self.key.as_ref().map(KeyPair::to_pkcs8_pem).unwrap_or_default()
    }
}

/// A revoked certificate for a CRL.
#[derive(Debug, Clone)]
pub struct RevokedEntry {
    pub serial: Vec<u8>,
    pub revoked_at: OffsetDateTime,
}

/// A CA able to issue certificates and CRLs.
pub struct CertificateAuthority {
    certificate_pem: String,
    certificate_der: Vec<u8>,
    /// The CA certificate's subject key identifier: the authority key id of its CRLs.
    key_id: Vec<u8>,
    key: KeyPair,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority").finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// A self-signed root CA.
    pub fn new_root(name: &Name, validity: Validity) -> Result<Self, CaError> {
        let key = KeyPair::generate();
        let params = ca_params(name, validity, &key)?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            certificate_pem: cert.pem(),
            certificate_der: cert.der().to_vec(),
            key_id: ski(key.public_key_sec1()),
            issuer: Issuer::new(params, key.clone()),
            key,
        })
    }

    /// An intermediate CA certified by `self`.
    pub fn new_intermediate(&self, name: &Name, validity: Validity) -> Result<Self, CaError> {
        let key = KeyPair::generate();
        let params = ca_params(name, validity, &key)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Self {
            certificate_pem: cert.pem(),
            certificate_der: cert.der().to_vec(),
            key_id: ski(key.public_key_sec1()),
            issuer: Issuer::new(params, key.clone()),
            key,
        })
    }

    /// Reloads a CA from its certificate and private key.
    pub fn from_pem(certificate_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(certificate_pem, key.clone())?;
        let der =
            pem_der(certificate_pem).ok_or(CaError::Generate(rcgen::Error::CouldNotParseCertificate))?;
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|_| CaError::Generate(rcgen::Error::CouldNotParseCertificate))?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_sec1() {
            return Err(CaError::Key("the private key does not belong to the CA certificate".into()));
        }
        // Keep the certificate's own key id: CRLs must name it for verifiers to match them.
        let key_id = cert
            .extensions()
            .iter()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            })
            .unwrap_or_else(|| ski(key.public_key_sec1()));
        Ok(Self { certificate_pem: certificate_pem.to_owned(), certificate_der: der, key_id, key, issuer })
    }

    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    pub fn key(&self) -> &KeyPair {
        &self.key
    }

    /// Issues a leaf certificate.
    pub fn issue(&self, request: &LeafRequest) -> Result<Issued, CaError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = request.name.to_rcgen()?;
        params.not_before = request.validity.not_before;
        params.not_after = request.validity.not_after;
        let serial = random_serial();
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        match request.usage {
            Usage::Signing => {
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            }
            Usage::Tls => {
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
                params.extended_key_usages =
                    vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
            }
        }
        params.subject_alt_names = request
            .subject_alt_names
            .iter()
            .map(|san| match san.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => {
                    san.clone().try_into().map(SanType::DnsName).map_err(|_| CaError::BadSan(san.clone()))
                }
            })
            .collect::<Result<_, _>>()?;
        if let Some(attrs) = &request.attributes {
            let json = serde_json::json!({ "attrs": attrs });
            params.custom_extensions.push(CustomExtension::from_oid_content(
                &ATTRIBUTE_OID,
                serde_json::to_vec(&json).expect("string map serializes"),
            ));
        }
        let (cert, key) = match &request.public_key {
            Some(public) => {
                params.key_identifier_method = KeyIdMethod::PreSpecified(ski(public));
                (params.signed_by(&PublicKey(public.clone()), &self.issuer)?, None)
            }
            None => {
                let key = KeyPair::generate();
                params.key_identifier_method = KeyIdMethod::PreSpecified(ski(key.public_key_sec1()));
                (params.signed_by(&key, &self.issuer)?, Some(key))
            }
        };
        if request.name.ou_layout == OuLayout::MultiValued {
            // rcgen writes one RDN per attribute: put the multi-valued subject into the TBS
            // certificate and sign that again.
            let certificate_der = der::resubject(cert.der(), &request.name.multi_valued_der(), &self.key)?;
            let certificate_pem = der::pem("CERTIFICATE", &certificate_der);
            return Ok(Issued { certificate_pem, certificate_der, key, serial });
        }
        Ok(Issued { certificate_pem: cert.pem(), certificate_der: cert.der().to_vec(), key, serial })
    }

    /// A CRL signed by this CA listing `revoked`.
    pub fn revocation_list(
        &self,
        revoked: &[RevokedEntry],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        crl_number: u64,
    ) -> Result<String, CaError> {
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from_slice(&crl_number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|r| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&r.serial),
                    revocation_time: r.revoked_at,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::PreSpecified(self.key_id.clone()),
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }
}

fn ca_params(name: &Name, validity: Validity, key: &KeyPair) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name.to_rcgen()?;
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ClientAuth, ExtendedKeyUsagePurpose::ServerAuth];
    params.key_identifier_method = KeyIdMethod::PreSpecified(ski(key.public_key_sec1()));
    Ok(params)
}

/// 16 random bytes with the top bit clear, so the DER integer stays positive.
fn random_serial() -> Vec<u8> {
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).expect("the OS random source is available");
    serial[0] &= 0x7f;
    if serial[0] == 0 {
        serial[0] = 1;
    }
    serial.to_vec()
}

fn pem_der(text: &str) -> Option<Vec<u8>> {
    pem::parse_many(text).ok()?.into_iter().find(|p| p.tag() == "CERTIFICATE").map(|p| p.into_contents())
}

/// Subject key identifier as cryptogen computes it: SHA-256 of the public point.
fn ski(public_sec1: &[u8]) -> Vec<u8> {
    Sha256::digest(public_sec1).to_vec()
}

/// Fabric names a key file after its SKI: hex(SHA-256(public point)).
pub fn ski_hex(public_sec1: &[u8]) -> String {
    ski(public_sec1).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_a_chain_with_attributes() {
        let now = OffsetDateTime::now_utc();
        let root = CertificateAuthority::new_root(
            &Name::fabric_style("ca.org1", Some("org1"), &[]),
            Validity::days_from(now, 365),
        )
        .expect("root");
        let issued = root
            .issue(
                &LeafRequest::enrollment("alice", "client", Validity::days_from(now, 30))
                    .with_attributes(BTreeMap::from([("role".to_owned(), "patient".to_owned())])),
            )
            .expect("leaf");
        assert!(issued.certificate_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(issued.key.is_some());
        let reloaded = CertificateAuthority::from_pem(root.certificate_pem(), &root.key().to_pkcs8_pem())
            .expect("reload");
        assert_eq!(reloaded.certificate_der(), root.certificate_der());
    }

    #[test]
    fn fabric_ca_subjects_carry_one_multi_valued_ou_rdn() {
        use x509_parser::prelude::FromDer;
        let now = OffsetDateTime::now_utc();
        let root = CertificateAuthority::new_root(
            &Name::fabric_style("ca.org1", Some("org1"), &[]),
            Validity::days_from(now, 365),
        )
        .expect("root");
        let name = Name {
            common_name: "user_1@org1".into(),
            organizational_units: vec!["client".into(), "org1".into(), "department1".into()],
            ou_layout: OuLayout::MultiValued,
            ..Name::default()
        };
        let issued = root
            .issue(&LeafRequest {
                name,
                ..LeafRequest::enrollment("x", "client", Validity::days_from(now, 30))
            })
            .expect("leaf");
        let (_, cert) =
            x509_parser::certificate::X509Certificate::from_der(&issued.certificate_der).expect("DER");
        let rdns: Vec<Vec<(String, String)>> = cert
            .subject()
            .iter()
            .map(|rdn| {
                rdn.iter()
                    .map(|atv| (atv.attr_type().to_id_string(), atv.as_str().expect("string").to_owned()))
                    .collect()
            })
            .collect();
        let ou = |v: &str| ("2.5.4.11".to_owned(), v.to_owned());
        // DER order: shorter encodings first.
        assert_eq!(
            rdns,
            vec![
                vec![ou("org1"), ou("client"), ou("department1")],
                vec![("2.5.4.3".to_owned(), "user_1@org1".to_owned())],
            ]
        );
        // "user_1@org1" is no PrintableString: UTF8String, as Go writes it.
        let cn = cert.subject().iter_common_name().next().expect("CN");
        assert_eq!(cn.attr_value().tag(), x509_parser::der_parser::asn1_rs::Tag::Utf8String);
        // Signed again over the new subject: it verifies under the CA, and the PEM is the DER.
        let (_, ca) =
            x509_parser::certificate::X509Certificate::from_der(root.certificate_der()).expect("CA");
        cert.verify_signature(Some(ca.public_key())).expect("signature over the new TBS");
        assert_eq!(pem_der(&issued.certificate_pem).expect("PEM"), issued.certificate_der);
        // The cryptogen layout is unchanged: one RDN per OU.
        let plain =
            root.issue(&LeafRequest::enrollment("p", "peer", Validity::days_from(now, 30))).expect("peer");
        let (_, plain) =
            x509_parser::certificate::X509Certificate::from_der(&plain.certificate_der).expect("DER");
        assert!(plain.subject().iter().all(|rdn| rdn.iter().count() == 1));
    }
}
