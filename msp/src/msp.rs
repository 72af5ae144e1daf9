use bytes::Bytes;
use medfabric_proto::msp::FabricMspConfig;
use sha2::{Digest, Sha256};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::cert::{Certificate, pem_to_der_all};
use crate::error::MspError;
use crate::identity::{Identity, NodeRole};

/// Longest certification chain accepted (leaf to root).
const MAX_CHAIN_DEPTH: usize = 8;

/// One CRL: which CA it speaks for (issuer name and authority key id), its number, and
/// its PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlEntry {
    pub issuer: Vec<u8>,
    pub authority_key_id: Option<Vec<u8>>,
    pub number: Option<Vec<u8>>,
    pub pem: String,
}

impl CrlEntry {
    /// Does this CRL speak for the same CA as `other` (same name and key)?
    pub fn same_authority(&self, other: &CrlEntry) -> bool {
        self.issuer == other.issuer && self.authority_key_id == other.authority_key_id
    }
}

/// Each CRL in `pem`, one entry per CRL (a bundle is split).
pub fn crl_entries(pem: &[u8]) -> Result<Vec<CrlEntry>, MspError> {
    let bad = |why: String| MspError::BadCertificate(format!("CRL: {why}"));
    let mut entries = Vec::new();
    for (label, der) in pem_to_der_all(pem).map_err(|e| bad(e.to_string()))? {
        if label != "X509 CRL" {
            continue;
        }
        let (_, crl) = CertificateRevocationList::from_der(&der).map_err(|e| bad(e.to_string()))?;
        let authority_key_id = crl.extensions().iter().find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref().map(|k| k.0.to_vec()),
            _ => None,
        });
        entries.push(CrlEntry {
            issuer: crl.issuer().as_raw().to_vec(),
            authority_key_id,
            number: crl.crl_number().map(|n| n.to_bytes_be()),
            pem: ::pem::encode(&::pem::Pem::new("X509 CRL", der.clone())),
        });
    }
    if entries.is_empty() {
        return Err(bad("no X509 CRL in the PEM".into()));
    }
    Ok(entries)
}

/// Is the CRL (DER inside `entry`) signed by one of `config`'s root or intermediate CAs?
pub fn crl_signed_by(entry: &CrlEntry, config: &FabricMspConfig) -> bool {
    let Ok(ders) = pem_to_der_all(entry.pem.as_bytes()) else { return false };
    let Some((_, der)) = ders.into_iter().find(|(label, _)| label == "X509 CRL") else { return false };
    let Ok((_, crl)) = CertificateRevocationList::from_der(&der) else { return false };
    config.root_certs.iter().chain(&config.intermediate_certs).any(|pem| {
        pem_to_der_all(pem).unwrap_or_default().iter().any(|(_, cert)| {
            x509_parser::certificate::X509Certificate::from_der(cert).is_ok_and(|(_, ca)| {
                ca.subject().as_raw() == crl.issuer().as_raw()
                    && crl.verify_signature(ca.public_key()).is_ok()
            })
        })
    })
}

/// One organization's membership service provider: the CAs that certify its
/// identities, the CRLs that revoke them, and the NodeOU roles.
#[derive(Debug)]
pub struct Msp {
    id: String,
    roots: Vec<Certificate>,
    intermediates: Vec<Certificate>,
    admins: Vec<Certificate>,
    crls: Vec<Vec<u8>>,
    /// DER of the CAs that issued an intermediate: they may not issue identities.
    internal_cas: Vec<Vec<u8>>,
    node_ous: Option<NodeOus>,
    ou_restrictions: Vec<OuIdentifier>,
    tls_roots: Vec<Bytes>,
    config: FabricMspConfig,
}

#[derive(Debug, Clone)]
struct OuIdentifier {
    ou: String,
    /// Required certification chain hash, when the config names a CA certificate.
    certifiers_id: Option<[u8; 32]>,
}

#[derive(Debug, Clone)]
struct NodeOus {
    by_role: Vec<(NodeRole, OuIdentifier)>,
}

impl Msp {
    /// Builds an MSP from a channel config's (or an MSP folder's) `FabricMSPConfig`.
    pub fn from_config(config: &FabricMspConfig) -> Result<Self, MspError> {
        let id = config.name.clone();
        let bad = |why: String| MspError::Config { msp_id: id.clone(), why };
        if id.is_empty() {
            return Err(bad("empty MSP name".into()));
        }
        let parse_all = |pems: &[Bytes], what: &str| -> Result<Vec<Certificate>, MspError> {
            let mut out = Vec::new();
            for pem in pems {
                for (label, der) in pem_to_der_all(pem).map_err(|e| bad(format!("{what}: {e}")))? {
                    if label == "CERTIFICATE" {
                        out.push(Certificate::from_der(der).map_err(|e| bad(format!("{what}: {e}")))?);
                    }
                }
            }
            Ok(out)
        };
        let roots = parse_all(&config.root_certs, "root certificate")?;
        if roots.is_empty() {
            return Err(bad("no root CA certificate".into()));
        }
        if let Some(root) = roots.iter().find(|r| !r.is_ca()) {
            return Err(bad(format!("root certificate {:?} is not a CA", root.common_name())));
        }
        let intermediates = parse_all(&config.intermediate_certs, "intermediate certificate")?;
        let admins = parse_all(&config.admins, "admin certificate")?;
        let mut crls = Vec::new();
        for pem in &config.revocation_list {
            for (label, der) in pem_to_der_all(pem).map_err(|e| bad(format!("CRL: {e}")))? {
                if label == "X509 CRL" {
                    CertificateRevocationList::from_der(&der).map_err(|e| bad(format!("CRL: {e}")))?;
                    crls.push(der);
                }
            }
        }
        let mut msp = Msp {
            id: id.clone(),
            roots,
            intermediates,
            admins,
            crls,
            internal_cas: Vec::new(),
            node_ous: None,
            ou_restrictions: Vec::new(),
            tls_roots: config.tls_root_certs.clone(),
            config: config.clone(),
        };
        // Intermediates must be CAs that chain to a root. The CAs that issued them are
        // internal nodes of the certification tree: Fabric lets only leaf CAs issue
        // identities.
        let mut internal = Vec::new();
        for intermediate in &msp.intermediates {
            if !intermediate.is_ca() {
                return Err(bad(format!("intermediate {:?} is not a CA", intermediate.common_name())));
            }
            let chain = msp.chain_of(intermediate).map_err(|_| {
                bad(format!("intermediate {:?} does not chain to a root", intermediate.common_name()))
            })?;
            internal.push(chain[0].der().to_vec());
        }
        msp.internal_cas = internal;
        let resolve = |msp: &Msp, cert_pem: &Bytes, ou: &str| -> Result<OuIdentifier, MspError> {
            let certifiers_id = if cert_pem.is_empty() {
                None
            } else {
                let cert =
                    Certificate::from_pem(cert_pem).map_err(|e| bad(format!("OU identifier {ou:?}: {e}")))?;
                // The CA's own certification chain: itself, then its issuers to a root.
                let mut chain = vec![cert.clone()];
                if !msp.roots.iter().any(|root| root.der() == cert.der()) {
                    chain.extend(msp.chain_of(&cert).map_err(|_| {
                        bad(format!("OU identifier {ou:?}: certificate is not one of this MSP's CAs"))
                    })?);
                }
                Some(chain_hash(&chain))
            };
            Ok(OuIdentifier { ou: ou.to_owned(), certifiers_id })
        };
        let mut restrictions = Vec::new();
        for identifier in &config.organizational_unit_identifiers {
            restrictions.push(resolve(
                &msp,
                &identifier.certificate,
                &identifier.organizational_unit_identifier,
            )?);
        }
        msp.ou_restrictions = restrictions;
        if let Some(node_ous) = config.fabric_node_ous.as_ref().filter(|n| n.enable) {
            let mut by_role = Vec::new();
            let entries = [
                (NodeRole::Client, &node_ous.client_ou_identifier),
                (NodeRole::Peer, &node_ous.peer_ou_identifier),
                (NodeRole::Admin, &node_ous.admin_ou_identifier),
                (NodeRole::Orderer, &node_ous.orderer_ou_identifier),
            ];
            for (role, identifier) in entries {
                if let Some(identifier) = identifier {
                    by_role.push((
                        role,
                        resolve(&msp, &identifier.certificate, &identifier.organizational_unit_identifier)?,
                    ));
                }
            }
            msp.node_ous = Some(NodeOus { by_role });
        }
        Ok(msp)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The configuration this MSP was built from.
    pub fn config(&self) -> &FabricMspConfig {
        &self.config
    }

    pub fn node_ous_enabled(&self) -> bool {
        self.node_ous.is_some()
    }

    /// PEM roots of the organization's TLS CA.
    pub fn tls_root_certs(&self) -> &[Bytes] {
        &self.tls_roots
    }

    /// Validates a signer's certificate and builds the identity. Expiry is not checked
    /// here (see [`Identity::check_validity_at`]).
    pub(crate) fn validate(&self, serialized: Bytes, certificate: Certificate) -> Result<Identity, MspError> {
        if certificate.is_ca() {
            return Err(MspError::CaCertificateAsSigner);
        }
        if !certificate.is_p256() {
            return Err(MspError::UnsupportedKey);
        }
        let chain = self.chain_of(&certificate)?;
        if self.internal_cas.iter().any(|der| der.as_slice() == chain[0].der()) {
            return Err(MspError::IssuerNotLeafCa);
        }
        self.check_revocation(&certificate, &chain[0])?;
        let certifiers_id = chain_hash(&chain);
        let ous = certificate.organizational_units();
        if !self.ou_restrictions.is_empty()
            && !self
                .ou_restrictions
                .iter()
                .any(|r| ous.contains(&r.ou) && r.certifiers_id.is_none_or(|c| c == certifiers_id))
        {
            return Err(MspError::UntrustedChain { msp_id: self.id.clone() });
        }
        let role = match &self.node_ous {
            None => None,
            Some(node_ous) => {
                let mut found: Vec<(NodeRole, &OuIdentifier)> = Vec::new();
                for ou in ous {
                    if let Some((role, identifier)) = node_ous.by_role.iter().find(|(_, id)| &id.ou == ou) {
                        if identifier.certifiers_id.is_some_and(|c| c != certifiers_id) {
                            return Err(MspError::NodeOuCertifier { ou: ou.clone() });
                        }
                        found.push((*role, identifier));
                    }
                }
                if found.len() != 1 {
                    return Err(MspError::NodeOuRole { found: found.len() });
                }
                Some(found[0].0)
            }
        };
        let is_admin =
            role == Some(NodeRole::Admin) || self.admins.iter().any(|admin| admin.der() == certificate.der());
        Ok(Identity {
            msp_id: self.id.clone(),
            serialized,
            id_hash: certificate.id_hash(),
            certificate,
            role,
            is_admin,
            certifiers_id,
        })
    }

    /// The certificates above `cert`, its issuer first and a root last.
    fn chain_of(&self, cert: &Certificate) -> Result<Vec<Certificate>, MspError> {
        let untrusted = || MspError::UntrustedChain { msp_id: self.id.clone() };
        let mut chain = Vec::new();
        let mut current = cert.clone();
        for _ in 0..MAX_CHAIN_DEPTH {
            if let Some(root) = self.roots.iter().find(|root| current.is_issued_by(root)) {
                chain.push(root.clone());
                return Ok(chain);
            }
            let issuer = self
                .intermediates
                .iter()
                .find(|ca| ca.der() != current.der() && current.is_issued_by(ca))
                .ok_or_else(untrusted)?;
            chain.push(issuer.clone());
            current = issuer.clone();
        }
        Err(untrusted())
    }

    /// Rejects `cert` when a CRL signed by its issuer lists its serial number.
    fn check_revocation(&self, cert: &Certificate, issuer: &Certificate) -> Result<(), MspError> {
        let Ok((_, issuer_x509)) = x509_parser::certificate::X509Certificate::from_der(issuer.der()) else {
            return Ok(());
        };
        for der in &self.crls {
            let Ok((_, crl)) = CertificateRevocationList::from_der(der) else { continue };
            if crl.issuer().as_raw() != issuer_x509.subject().as_raw() {
                continue;
            }
            let crl_aki = crl.extensions().iter().find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    aki.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            });
            if let (Some(aki), Some(ski)) = (crl_aki, issuer.subject_key_id())
                && aki != ski
            {
                continue;
            }
            if crl.verify_signature(issuer_x509.public_key()).is_err() {
                // A CRL that its issuer did not sign revokes nothing.
                continue;
            }
            let serial = trim_serial(cert.serial());
            if crl.iter_revoked_certificates().any(|r| trim_serial(r.raw_serial()) == serial) {
                return Err(MspError::Revoked { serial: cert.serial_hex() });
            }
        }
        Ok(())
    }
}

fn trim_serial(serial: &[u8]) -> &[u8] {
    let skip = serial.iter().take_while(|b| **b == 0).count();
    &serial[skip.min(serial.len())..]
}

/// Fabric's certification chain identifier: SHA-256 over the chain's DER certificates.
/// Fabric hashes the CA certificates as its MSP sanitised them (low-S signatures).
fn chain_hash(chain: &[Certificate]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for cert in chain {
        hasher.update(cert.sanitized_der());
    }
    hasher.finalize().into()
}
