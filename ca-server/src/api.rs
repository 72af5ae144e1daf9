//! The CA's operations, sans-HTTP: each takes the authenticated caller and the request
//! body and returns the `result` JSON or an [`ApiError`] with Fabric CA's HTTP status,
//! code and (remote) message (`reference/fabric-ca-behaviour.md`).

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result};
use medfabric_ca::{CertificateAuthority, LeafRequest, Name, RevokedEntry, Usage, Validity};
use medfabric_msp::Certificate;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::registry::{Attribute, CertificateRecord, IdentityRecord, Registry, SecretHash, normalize_hex};

/// A failure as Fabric CA reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: u32,
    pub message: String,
    /// What the server logs (not sent).
    pub detail: String,
}

impl ApiError {
    pub fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        let message = message.into();
        Self { status, code, detail: message.clone(), message }
    }

    /// 401 / 20, the reason only in the log.
    pub fn authentication(detail: impl Into<String>) -> Self {
        Self { status: 401, code: 20, message: "Authentication failure".into(), detail: detail.into() }
    }

    /// 403 / 71, the reason only in the log.
    pub fn authorization(detail: impl Into<String>) -> Self {
        Self { status: 403, code: 71, message: "Authorization failure".into(), detail: detail.into() }
    }

    pub fn no_authorization_header() -> Self {
        Self::new(401, 2, "No authorization header")
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, 0, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, 0, message)
    }
}

/// A CA server's configuration (YAML; the node config `network generate` writes).
#[derive(Debug, Clone, Deserialize)]
pub struct CaConfig {
    #[serde(alias = "ca_name")]
    pub name: String,
    pub listen_address: String,
    #[serde(alias = "ca_cert_file")]
    pub cert_file: PathBuf,
    #[serde(alias = "ca_key_file")]
    pub key_file: PathBuf,
    /// The registry file (default: `registry.json` in `data_dir`).
    #[serde(default)]
    pub registry_file: PathBuf,
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    #[serde(alias = "bootstrap_admin")]
    pub bootstrap: Bootstrap,
    /// Largest request body accepted.
    #[serde(default = "default_body_limit")]
    pub max_request_body_bytes: usize,
    #[serde(default)]
    pub affiliations: Vec<String>,
    /// The CA's enrollment limit per identity (-1: unlimited).
    #[serde(default = "unlimited")]
    pub max_enrollments: i32,
    #[serde(default)]
    pub allow_identity_removal: bool,
}

fn unlimited() -> i32 {
    -1
}

fn default_body_limit() -> usize {
    1 << 20
}

#[derive(Debug, Clone, Deserialize)]
pub struct Bootstrap {
    pub id: String,
    pub secret: String,
}

/// Fabric CA's reason names (RFC 5280 codes).
pub fn reason_code(name: &str) -> u8 {
    match name {
        "keycompromise" => 1,
        "cacompromise" => 2,
        "affiliationchanged" => 3,
        "superseded" => 4,
        "cessationofoperation" => 5,
        "certificatehold" => 6,
        "removefromcrl" => 8,
        "privilegewithdrawn" => 9,
        "aacompromise" => 10,
        _ => 0,
    }
}

/// One certificate authority and its registry.
#[derive(Debug)]
pub struct CaService {
    pub config: CaConfig,
    ca: CertificateAuthority,
    ca_cert: Certificate,
    registry: Mutex<Registry>,
}

fn flag(record: &IdentityRecord, name: &str) -> bool {
    matches!(record.attr(name), Some("1" | "true"))
}

fn set_attr(attrs: &mut Vec<Attribute>, name: &str, value: &str) {
    match attrs.iter_mut().find(|a| a.name == name) {
        Some(a) => a.value = value.to_owned(),
        None => attrs.push(Attribute { name: name.to_owned(), value: value.to_owned(), ecert: true }),
    }
}

/// Does `list` (comma-separated, or `*`) allow `value`?
fn allows(list: Option<&str>, value: &str) -> bool {
    list.is_some_and(|l| l.split(',').map(str::trim).any(|v| v == "*" || v == value))
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn random_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("random: {e}")))?;
    Ok(crate::base64::encode(&bytes).replace(['+', '/', '='], "x"))
}

#[derive(Debug, Deserialize)]
struct AttrRequest {
    name: String,
    #[serde(default)]
    optional: bool,
}

#[derive(Debug, Deserialize)]
struct EnrollBody {
    certificate_request: String,
    #[serde(default)]
    attr_reqs: Option<Vec<AttrRequest>>,
}

#[derive(Debug, Deserialize)]
struct RegisterBody {
    #[serde(deserialize_with = "null_as_empty")]
    id: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default, deserialize_with = "null_as_zero")]
    max_enrollments: i32,
    #[serde(default, deserialize_with = "null_as_empty")]
    affiliation: String,
    #[serde(default, deserialize_with = "null_as_no_attrs")]
    attrs: Vec<Attribute>,
}

fn null_as_zero<'de, D: serde::Deserializer<'de>>(de: D) -> Result<i32, D::Error> {
    Ok(Option::<i32>::deserialize(de)?.unwrap_or_default())
}

fn null_as_no_attrs<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Vec<Attribute>, D::Error> {
    Ok(Option::<Vec<Attribute>>::deserialize(de)?.unwrap_or_default())
}

/// A JSON `null` where a string is expected reads as empty, as Go's decoder does.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(de)?.unwrap_or_default())
}

/// A JSON `null` where a flag is expected reads as false.
fn null_as_false<'de, D: serde::Deserializer<'de>>(de: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(de)?.unwrap_or_default())
}

#[derive(Debug, Deserialize, Default)]
struct RevokeBody {
    #[serde(default, deserialize_with = "null_as_empty")]
    id: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    serial: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    aki: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    reason: String,
    #[serde(default, deserialize_with = "null_as_false")]
    gencrl: bool,
}

/// The public key of a PEM CSR (verified self-signature, P-256 only).
fn csr_public_key(pem: &str) -> Result<Vec<u8>, ApiError> {
    use x509_parser::prelude::FromDer;
    let bad = |why: String| ApiError::bad_request(format!("Invalid certificate request: {why}"));
    let (_, block) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| bad(format!("not PEM: {e}")))?;
    if block.label != "CERTIFICATE REQUEST" {
        return Err(bad(format!("expected a CERTIFICATE REQUEST, got {}", block.label)));
    }
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
        .map_err(|e| bad(format!("not a PKCS#10 request: {e}")))?;
    let spki = &csr.certification_request_info.subject_pki;
    let ec = spki.algorithm.algorithm == x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY;
    let p256 = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .is_some_and(|oid| oid == x509_parser::oid_registry::OID_EC_P256);
    if !(ec && p256) {
        return Err(bad("the key must be ECDSA P-256".into()));
    }
    csr.verify_signature().map_err(|e| bad(format!("signature does not verify: {e}")))?;
    let key = spki.subject_public_key.data.to_vec();
    if key.len() != 65 || key[0] != 4 {
        return Err(bad("the key must be an uncompressed P-256 point".into()));
    }
    Ok(key)
}

impl CaService {
    /// Loads the CA key pair and the registry; creates the bootstrap identity and the
    /// configured affiliations the first time.
    pub fn open(config: CaConfig) -> Result<Self> {
        let cert_pem = std::fs::read_to_string(&config.cert_file)
            .with_context(|| format!("reading {}", config.cert_file.display()))?;
        let key_pem = std::fs::read_to_string(&config.key_file)
            .with_context(|| format!("reading {}", config.key_file.display()))?;
        let ca = CertificateAuthority::from_pem(&cert_pem, &key_pem).context("the CA key pair")?;
        let ca_cert = Certificate::from_pem(cert_pem.as_bytes()).context("the CA certificate")?;
        let mut registry = Registry::open(&config.registry_file)?;
        if registry.data.identities.is_empty() {
            let admin = IdentityRecord {
                id: config.bootstrap.id.clone(),
                kind: "client".into(),
                affiliation: String::new(),
                attrs: [
                    ("hf.Registrar.Roles", "*"),
                    ("hf.Registrar.DelegateRoles", "*"),
                    ("hf.Registrar.Attributes", "*"),
                    ("hf.Revoker", "1"),
                    ("hf.IntermediateCA", "1"),
                    ("hf.GenCRL", "1"),
                    ("hf.AffiliationMgr", "1"),
                ]
                .iter()
                .map(|(n, v)| Attribute { name: (*n).into(), value: (*v).into(), ecert: false })
                .collect(),
                max_enrollments: -1,
                enrollments: 0,
                secret: SecretHash::new(&config.bootstrap.secret)?,
                revoked: false,
            };
            registry.data.identities.insert(admin.id.clone(), admin);
            registry.data.affiliations.extend(config.affiliations.iter().cloned());
            registry.save()?;
        }
        Ok(Self { config, ca, ca_cert, registry: Mutex::new(registry) })
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of an identity's record.
    pub fn identity(&self, id: &str) -> Option<IdentityRecord> {
        self.registry().data.identities.get(id).cloned()
    }

    pub fn cainfo(&self) -> Value {
        json!({
            "CAName": self.config.name,
            "CAChain": crate::base64::encode(self.ca.certificate_pem().as_bytes()),
            "IssuerPublicKey": "",
            "IssuerRevocationPublicKey": "",
            "Version": "1.5.21",
        })
    }

    /// HTTP Basic `id:secret` → the identity id.
    pub fn authenticate_basic(&self, header: Option<&str>) -> Result<String, ApiError> {
        let Some(header) = header else { return Err(ApiError::no_authorization_header()) };
        let encoded = header.strip_prefix("Basic ").ok_or_else(|| ApiError::authentication("not Basic"))?;
        let decoded = crate::base64::decode(encoded).ok_or_else(|| ApiError::authentication("bad base64"))?;
        let text = String::from_utf8(decoded).map_err(|_| ApiError::authentication("not UTF-8"))?;
        let (id, secret) = text.split_once(':').ok_or_else(|| ApiError::authentication("no ':'"))?;
        let record =
            self.identity(id).ok_or_else(|| ApiError::authentication(format!("Failed to get user: {id}")))?;
        if record.revoked {
            return Err(ApiError::authentication(format!(
                "Login failure: User {id} is revoked; access denied"
            )));
        }
        if !record.secret.matches(secret) {
            return Err(ApiError::authentication("Login failure: Password mismatch"));
        }
        if record.max_enrollments >= 0 && record.enrollments >= record.max_enrollments {
            return Err(ApiError::authentication(format!(
                "Login failure: The identity {id} has already enrolled {} times, it has reached its maximum enrollment allowance",
                record.enrollments
            )));
        }
        Ok(id.to_owned())
    }

    /// The token rule: `b64(certPEM) "." b64(sig)` over `METHOD.b64(uri).b64(body).b64cert`.
    pub fn authenticate_token(
        &self,
        header: Option<&str>,
        method: &str,
        uri: &str,
        body: &[u8],
    ) -> Result<IdentityRecord, ApiError> {
        let Some(header) = header else { return Err(ApiError::no_authorization_header()) };
        let parts: Vec<&str> = header.split('.').collect();
        let [b64cert, b64sig] = parts.as_slice() else {
            return Err(ApiError::authentication("Invalid token format; expecting 2 parts separated by '.'"));
        };
        let pem = crate::base64::decode(b64cert)
            .ok_or_else(|| ApiError::authentication("token certificate is not base64"))?;
        let signature = crate::base64::decode(b64sig)
            .ok_or_else(|| ApiError::authentication("token signature is not base64"))?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| ApiError::authentication(format!("token certificate: {e}")))?;
        if !cert.is_issued_by(&self.ca_cert) {
            return Err(ApiError::authentication("the token's certificate was not issued by this CA"));
        }
        let t = now();
        if t < cert.not_before() || t > cert.not_after() {
            return Err(ApiError::authentication("the token's certificate has expired or is not yet valid"));
        }
        {
            let registry = self.registry();
            let serial = normalize_hex(&cert.serial_hex());
            let known = registry.data.certificates.iter().find(|c| c.serial == serial);
            match known {
                None => {
                    return Err(ApiError::authentication(
                        "the token's certificate is not in the certificate DB",
                    ));
                }
                Some(c) if c.revoked_at.is_some() => {
                    return Err(ApiError::authentication(
                        "The certificate in the authorization header is a revoked certificate",
                    ));
                }
                Some(_) => {}
            }
        }
        let payload = format!(
            "{method}.{}.{}.{b64cert}",
            crate::base64::encode(uri.as_bytes()),
            crate::base64::encode(body)
        );
        medfabric_msp::verify_signature(cert.public_key(), payload.as_bytes(), &signature)
            .map_err(|e| ApiError::authentication(format!("Token signature validation failed: {e}")))?;
        let id = cert.common_name().to_owned();
        let record = self
            .identity(&id)
            .ok_or_else(|| ApiError::authentication(format!("Failed to get user: {id}")))?;
        if record.revoked {
            return Err(ApiError::authentication(format!("User {id} is revoked")));
        }
        Ok(record)
    }

    /// Issues an enrollment certificate for `id` from a CSR.
    fn issue(&self, record: &IdentityRecord, body: &[u8]) -> Result<Value, ApiError> {
        let request: EnrollBody = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
        let public_key = csr_public_key(&request.certificate_request)?;
        // Attributes: the ecert ones, or exactly those requested.
        let attributes: Vec<&Attribute> = match &request.attr_reqs {
            None => record.attrs.iter().filter(|a| a.ecert).collect(),
            Some(reqs) => {
                let missing: Vec<&str> = reqs
                    .iter()
                    .filter(|r| !r.optional && record.attr(&r.name).is_none())
                    .map(|r| r.name.as_str())
                    .collect();
                if !missing.is_empty() {
                    return Err(ApiError::internal(format!(
                        "Failed to find requested attributes: The following required attributes are missing: [{}]",
                        missing.join(" ")
                    )));
                }
                record.attrs.iter().filter(|a| reqs.iter().any(|r| r.name == a.name)).collect()
            }
        };
        let mut ous = vec![record.kind.clone()];
        if !record.affiliation.is_empty() {
            ous.push(record.affiliation.clone());
        }
        let ca_not_before = OffsetDateTime::from_unix_timestamp(self.ca_cert.not_before())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let ca_not_after = OffsetDateTime::from_unix_timestamp(self.ca_cert.not_after())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let not_after = (OffsetDateTime::now_utc() + time::Duration::hours(8760)).min(ca_not_after);
        let leaf = LeafRequest {
            name: Name { common_name: record.id.clone(), organizational_units: ous, ..Name::default() },
            subject_alt_names: Vec::new(),
            attributes: (!attributes.is_empty())
                .then(|| attributes.iter().map(|a| (a.name.clone(), a.value.clone())).collect()),
            validity: Validity { not_before: ca_not_before, not_after },
            usage: Usage::Signing,
            public_key: Some(public_key),
        };
        let issued = self.ca.issue(&leaf).map_err(|e| ApiError::internal(format!("issuing: {e}")))?;
        let aki = normalize_hex(&self.ca_cert.subject_key_id().map(hex::encode).unwrap_or_default());
        let serial = normalize_hex(&hex::encode(&issued.serial));
        let pem = issued.certificate_pem.clone();
        let id = record.id.clone();
        self.registry().update(|data| {
            data.certificates.push(CertificateRecord {
                serial,
                aki,
                id,
                pem,
                not_after: not_after.unix_timestamp(),
                revoked_at: None,
                reason: 0,
            });
            Ok(())
        })?;
        Ok(
            json!({"Cert": crate::base64::encode(issued.certificate_pem.as_bytes()), "ServerInfo": self.cainfo()}),
        )
    }

    /// `enroll`: counts against the identity's enrollment limit.
    pub fn enroll(&self, id: &str, body: &[u8]) -> Result<Value, ApiError> {
        let record = self.identity(id).ok_or_else(|| ApiError::authentication("unknown identity"))?;
        let result = self.issue(&record, body)?;
        self.registry().update(|data| {
            if let Some(r) = data.identities.get_mut(id) {
                r.enrollments += 1;
            }
            Ok(())
        })?;
        Ok(result)
    }

    /// `reenroll`: a new certificate for the token's identity.
    pub fn reenroll(&self, caller: &IdentityRecord, body: &[u8]) -> Result<Value, ApiError> {
        self.issue(caller, body)
    }

    /// `register`: by a registrar allowed to register the type and attributes.
    pub fn register(&self, caller: &IdentityRecord, body: &[u8]) -> Result<Value, ApiError> {
        let request: RegisterBody = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
        let kind = request.kind.clone().filter(|k| !k.is_empty()).unwrap_or_else(|| "client".into());
        let denied =
            |why: &str| ApiError::authorization(format!("Registration of '{}' failed: {why}", request.id));
        if request.id.is_empty() || request.id.contains(['/', ':']) {
            return Err(ApiError::bad_request(format!("Invalid identity name {:?}", request.id)));
        }
        if !allows(caller.attr("hf.Registrar.Roles"), &kind) {
            return Err(denied("the caller may not register this type"));
        }
        let attribute_rights = caller.attr("hf.Registrar.Attributes");
        if let Some(attr) = request.attrs.iter().find(|a| !allows(attribute_rights, &a.name)) {
            return Err(denied(&format!("the caller may not register attribute {}", attr.name)));
        }
        if request
            .attrs
            .iter()
            .any(|a| a.name.starts_with("hf.") && !caller.attrs.iter().any(|c| c.name == a.name))
        {
            return Err(denied("the caller may not delegate an hf. attribute it lacks"));
        }
        let secret = match request.secret.clone().filter(|s| !s.is_empty()) {
            Some(s) => s,
            None => random_secret()?,
        };
        let max_enrollments = match request.max_enrollments {
            0 => self.config.max_enrollments,
            n if n < -1 => return Err(ApiError::bad_request("max_enrollments must be -1 or more")),
            n => n,
        };
        let hash = SecretHash::new(&secret).map_err(|e| ApiError::internal(e.to_string()))?;
        let affiliation = request.affiliation.clone();
        let mut attrs = vec![
            Attribute { name: "hf.EnrollmentID".into(), value: request.id.clone(), ecert: true },
            Attribute { name: "hf.Type".into(), value: kind.clone(), ecert: true },
            Attribute { name: "hf.Affiliation".into(), value: affiliation.clone(), ecert: true },
        ];
        attrs.extend(request.attrs.iter().filter(|a| !a.name.starts_with("hf.Enrollment")).cloned());
        self.registry().update(|data| {
            if !affiliation.is_empty() && !data.affiliations.contains(&affiliation) {
                return Err(denied("unknown affiliation"));
            }
            if data.identities.contains_key(&request.id) {
                return Err(ApiError::new(
                    409,
                    74,
                    format!("Identity '{}' is already registered", request.id),
                ));
            }
            data.identities.insert(
                request.id.clone(),
                IdentityRecord {
                    id: request.id.clone(),
                    kind,
                    affiliation,
                    attrs,
                    max_enrollments,
                    enrollments: 0,
                    secret: hash,
                    revoked: false,
                },
            );
            Ok(())
        })?;
        Ok(json!({"secret": secret}))
    }

    /// `revoke`: by id (every certificate, and the identity) or serial + AKI.
    pub fn revoke(&self, caller: &IdentityRecord, body: &[u8]) -> Result<Value, ApiError> {
        if !flag(caller, "hf.Revoker") {
            return Err(ApiError::authorization("Caller does not have authority to revoke"));
        }
        let request: RevokeBody = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
        let reason = reason_code(&request.reason);
        let at = now();
        let revoked = self.registry().update(|data| {
            let mut revoked = Vec::new();
            if !request.id.is_empty() {
                let Some(identity) = data.identities.get_mut(&request.id) else {
                    return Err(ApiError::new(404, 63, "Failed to get User: sql: no rows in result set"));
                };
                identity.revoked = true;
                for cert in
                    data.certificates.iter_mut().filter(|c| c.id == request.id && c.revoked_at.is_none())
                {
                    cert.revoked_at = Some(at);
                    cert.reason = reason;
                    revoked.push(json!({"Serial": cert.serial, "AKI": cert.aki}));
                }
            } else {
                let (serial, aki) = (normalize_hex(&request.serial), normalize_hex(&request.aki));
                let Some(cert) =
                    data.certificates.iter_mut().find(|c| c.serial == serial && normalize_hex(&c.aki) == aki)
                else {
                    return Err(ApiError::new(
                        404,
                        66,
                        format!("Certificate with serial {serial} and AKI {aki} was not found"),
                    ));
                };
                if cert.revoked_at.is_some() {
                    return Err(ApiError::new(
                        404,
                        66,
                        format!("Certificate with serial {serial} and AKI {aki} was already revoked"),
                    ));
                }
                cert.revoked_at = Some(at);
                cert.reason = reason;
                revoked.push(json!({"Serial": cert.serial, "AKI": cert.aki}));
            }
            Ok(revoked)
        })?;
        let crl = if request.gencrl { self.crl()? } else { String::new() };
        Ok(json!({"RevokedCerts": revoked, "CRL": crl}))
    }

    /// The current CRL (base64 of its PEM).
    fn crl(&self) -> Result<String, ApiError> {
        let t = now();
        let number = self.registry().update(|data| {
            data.crl_number += 1;
            Ok(data.crl_number)
        })?;
        let registry = self.registry();
        let entries: Vec<RevokedEntry> = registry
            .data
            .certificates
            .iter()
            .filter(|c| c.not_after >= t)
            .filter_map(|c| {
                let revoked_at = OffsetDateTime::from_unix_timestamp(c.revoked_at?).ok()?;
                let serial = hex::decode(if !c.serial.len().is_multiple_of(2) {
                    format!("0{}", c.serial)
                } else {
                    c.serial.clone()
                })
                .ok()?;
                Some(RevokedEntry { serial, revoked_at })
            })
            .collect();
        drop(registry);
        let this_update = OffsetDateTime::now_utc();
        let pem = self
            .ca
            .revocation_list(&entries, this_update, this_update + time::Duration::days(1), number)
            .map_err(|e| ApiError::internal(format!("signing the CRL: {e}")))?;
        Ok(crate::base64::encode(pem.as_bytes()))
    }

    /// `gencrl`: by an identity with `hf.GenCRL`.
    pub fn gencrl(&self, caller: &IdentityRecord) -> Result<Value, ApiError> {
        if !flag(caller, "hf.GenCRL") {
            return Err(ApiError::authorization(format!(
                "The identity '{}' does not have authority to generate a CRL",
                caller.id
            )));
        }
        Ok(json!({"CRL": self.crl()?}))
    }

    fn identity_json(record: &IdentityRecord) -> Value {
        json!({
            "id": record.id,
            "type": record.kind,
            "affiliation": record.affiliation,
            "attrs": record.attrs,
            "max_enrollments": record.max_enrollments,
        })
    }

    /// `GET identities` (registrars).
    pub fn identities(&self, caller: &IdentityRecord) -> Result<Value, ApiError> {
        if caller.attr("hf.Registrar.Roles").is_none() {
            return Err(ApiError::authorization("not a registrar"));
        }
        let list: Vec<Value> = self.registry().data.identities.values().map(Self::identity_json).collect();
        Ok(json!({"identities": list, "caname": self.config.name}))
    }

    /// `GET identities/{id}` (registrars).
    pub fn identity_info(&self, caller: &IdentityRecord, id: &str) -> Result<Value, ApiError> {
        if caller.attr("hf.Registrar.Roles").is_none() {
            return Err(ApiError::authorization("not a registrar"));
        }
        let record = self
            .identity(id)
            .ok_or_else(|| ApiError::new(404, 63, "Failed to get User: sql: no rows in result set"))?;
        let mut value = Self::identity_json(&record);
        if !self.config.name.is_empty() {
            value["caname"] = json!(self.config.name);
        }
        Ok(value)
    }

    /// `DELETE identities/{id}` (registrars, when removal is enabled).
    pub fn remove_identity(&self, caller: &IdentityRecord, id: &str) -> Result<Value, ApiError> {
        if !self.config.allow_identity_removal {
            return Err(ApiError::new(403, 56, "Identity removal is disabled"));
        }
        if caller.attr("hf.Registrar.Roles").is_none() {
            return Err(ApiError::authorization("not a registrar"));
        }
        let removed = self.registry().update(|data| {
            data.identities
                .remove(id)
                .ok_or_else(|| ApiError::new(404, 63, "Failed to get User: sql: no rows in result set"))
        })?;
        Ok(Self::identity_json(&removed))
    }

    /// `PUT identities/{id}`: type, affiliation, attributes, max enrollments, secret
    /// (registrars allowed to register the resulting type and attributes).
    pub fn modify_identity(&self, caller: &IdentityRecord, id: &str, body: &[u8]) -> Result<Value, ApiError> {
        #[derive(Deserialize)]
        struct Modify {
            #[serde(default, rename = "type")]
            kind: Option<String>,
            #[serde(default)]
            affiliation: Option<String>,
            #[serde(default)]
            attrs: Option<Vec<Attribute>>,
            #[serde(default)]
            max_enrollments: Option<i32>,
            #[serde(default)]
            secret: Option<String>,
        }
        let change: Modify = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
        let kind = change.kind.clone();
        if let Some(kind) = &kind
            && !allows(caller.attr("hf.Registrar.Roles"), kind)
        {
            return Err(ApiError::authorization("the caller may not give this type"));
        }
        if !allows(caller.attr("hf.Registrar.Roles"), &self.identity(id).map(|r| r.kind).unwrap_or_default())
        {
            return Err(ApiError::authorization("the caller may not modify this identity"));
        }
        if let Some(attrs) = &change.attrs
            && let Some(bad) = attrs.iter().find(|a| !allows(caller.attr("hf.Registrar.Attributes"), &a.name))
        {
            return Err(ApiError::authorization(format!("the caller may not set attribute {}", bad.name)));
        }
        let secret = change
            .secret
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(SecretHash::new)
            .transpose()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let updated = self.registry().update(|data| {
            if let Some(affiliation) = &change.affiliation
                && !affiliation.is_empty()
                && !data.affiliations.contains(affiliation)
            {
                return Err(ApiError::authorization("unknown affiliation"));
            }
            let record = data
                .identities
                .get_mut(id)
                .ok_or_else(|| ApiError::new(404, 63, "Failed to get User: sql: no rows in result set"))?;
            if let Some(kind) = kind {
                record.kind = kind.clone();
                set_attr(&mut record.attrs, "hf.Type", &kind);
            }
            if let Some(affiliation) = change.affiliation {
                set_attr(&mut record.attrs, "hf.Affiliation", &affiliation);
                record.affiliation = affiliation;
            }
            if let Some(attrs) = change.attrs {
                for attr in attrs.into_iter().filter(|a| !a.name.starts_with("hf.Enrollment")) {
                    record.attrs.retain(|a| a.name != attr.name);
                    record.attrs.push(attr);
                }
            }
            if let Some(max) = change.max_enrollments {
                record.max_enrollments = max;
            }
            if let Some(secret) = secret {
                record.secret = secret;
            }
            Ok(record.clone())
        })?;
        Ok(Self::identity_json(&updated))
    }

    /// `DELETE affiliations/{name}` (hf.AffiliationMgr; refused while identities use it).
    pub fn remove_affiliation(&self, caller: &IdentityRecord, name: &str) -> Result<Value, ApiError> {
        if !flag(caller, "hf.AffiliationMgr") {
            return Err(ApiError::authorization("not an affiliation manager"));
        }
        self.registry().update(|data| {
            let prefix = format!("{name}.");
            if data.identities.values().any(|i| i.affiliation == name || i.affiliation.starts_with(&prefix)) {
                return Err(ApiError::new(400, 0, format!("Affiliation '{name}' is in use by identities")));
            }
            if !data.affiliations.remove(name) {
                return Err(ApiError::new(404, 0, format!("Affiliation '{name}' does not exist")));
            }
            data.affiliations.retain(|a| !a.starts_with(&prefix));
            Ok(())
        })?;
        Ok(json!({"name": name, "caname": self.config.name}))
    }

    /// `GET affiliations`: the tree.
    pub fn affiliations(&self) -> Value {
        let names: Vec<String> = self.registry().data.affiliations.iter().cloned().collect();
        fn children(names: &[String], parent: &str) -> Vec<Value> {
            names
                .iter()
                .filter(|n| match n.rsplit_once('.') {
                    Some((p, _)) => p == parent,
                    None => parent.is_empty(),
                })
                .map(|n| {
                    let nested = children(names, n);
                    if nested.is_empty() {
                        json!({"name": n})
                    } else {
                        json!({"name": n, "affiliations": nested})
                    }
                })
                .collect()
        }
        json!({"name": "", "affiliations": children(&names, ""), "caname": self.config.name})
    }

    /// `POST affiliations` (hf.AffiliationMgr).
    pub fn add_affiliation(&self, caller: &IdentityRecord, body: &[u8]) -> Result<Value, ApiError> {
        if !flag(caller, "hf.AffiliationMgr") {
            return Err(ApiError::authorization("not an affiliation manager"));
        }
        #[derive(Deserialize)]
        struct Add {
            name: String,
        }
        let add: Add = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
        self.registry().update(|data| {
            if !data.affiliations.insert(add.name.clone()) {
                return Err(ApiError::new(409, 0, format!("Affiliation '{}' already exists", add.name)));
            }
            Ok(())
        })?;
        Ok(json!({"name": add.name, "caname": self.config.name}))
    }
}
