//! The CA's operations, sans-HTTP: each takes the authenticated caller and the request
//! body and returns the `result` JSON or an [`ApiError`] with Fabric CA's HTTP status,
//! code and (remote) message (`docs/fabric-ca.md`).

use std::sync::Mutex;

use anyhow::{Context, Result};
use medfabric_ca::{CertificateAuthority, LeafRequest, Name, OuLayout, RevokedEntry, Usage, Validity};
use medfabric_msp::Certificate;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::authority;
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

pub use medfabric_config::ca::{Bootstrap, CaConfig, CaTls, SeedIdentity};

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

fn set_attr(attrs: &mut Vec<Attribute>, name: &str, value: &str) {
    match attrs.iter_mut().find(|a| a.name == name) {
        Some(a) => a.value = value.to_owned(),
        None => attrs.push(Attribute { name: name.to_owned(), value: value.to_owned(), ecert: true }),
    }
}

/// The attributes the CA itself gives every identity it registers: `hf.EnrollmentID`,
/// `hf.Type`, `hf.Affiliation` (in enrollment certificates by default).
fn fixed_attributes(id: &str, kind: &str, affiliation: &str) -> Vec<Attribute> {
    [(authority::ENROLLMENT_ID, id), (authority::TYPE, kind), (authority::AFFILIATION, affiliation)]
        .into_iter()
        .map(|(name, value)| Attribute { name: name.into(), value: value.into(), ecert: true })
        .collect()
}

/// Refuses when `record` is no longer what the registry holds: authority was checked on
/// it before the registry was locked, and a concurrent change (a revocation, a demotion)
/// must not be overtaken.
fn unchanged(data: &crate::registry::RegistryData, record: &IdentityRecord) -> Result<(), ApiError> {
    match data.identities.get(&record.id) {
        Some(current) if current == record && !current.revoked => Ok(()),
        _ => Err(ApiError::new(
            409,
            0,
            format!("identity '{}' changed while the request was processed; try again", record.id),
        )),
    }
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
                seeded: false,
            };
            registry.data.identities.insert(admin.id.clone(), admin);
            registry.data.affiliations.extend(config.affiliations.iter().cloned());
            registry.save()?;
        }
        for affiliation in &config.affiliations {
            authority::check_affiliation_name(affiliation).map_err(anyhow::Error::msg)?;
        }
        if let Some(clash) = config.seed_identities.iter().find(|s| s.id == config.bootstrap.id) {
            anyhow::bail!("seed identity '{}' has the bootstrap identity's id", clash.id);
        }
        let unseeded: Vec<&SeedIdentity> =
            config.seed_identities.iter().filter(|s| !registry.data.identities.contains_key(&s.id)).collect();
        if !unseeded.is_empty() {
            for seed in unseeded {
                if let Some(file) = &seed.certificate_file {
                    let pem = std::fs::read_to_string(file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    let cert = Certificate::from_pem(pem.as_bytes())
                        .with_context(|| format!("the certificate of seed identity {}", seed.id))?;
                    registry.data.certificates.push(CertificateRecord {
                        serial: normalize_hex(&cert.serial_hex()),
                        aki: normalize_hex(&cert.authority_key_id().map(hex::encode).unwrap_or_default()),
                        id: seed.id.clone(),
                        pem,
                        not_after: cert.not_after(),
                        revoked_at: None,
                        reason: 0,
                    });
                }
                let mut attrs = fixed_attributes(&seed.id, &seed.kind, &seed.affiliation);
                attrs.extend(
                    seed.attrs.iter().filter(|(n, _)| !n.starts_with("hf.")).map(|(n, v)| Attribute {
                        name: n.clone(),
                        value: v.clone(),
                        ecert: true,
                    }),
                );
                registry.data.identities.insert(
                    seed.id.clone(),
                    IdentityRecord {
                        id: seed.id.clone(),
                        kind: seed.kind.clone(),
                        affiliation: seed.affiliation.clone(),
                        attrs,
                        // Enrolled outside the CA: no enrollment through it.
                        max_enrollments: 0,
                        enrollments: 0,
                        secret: SecretHash::unusable(),
                        revoked: false,
                        seeded: true,
                    },
                );
            }
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
        let owner;
        {
            let registry = self.registry();
            let serial = normalize_hex(&cert.serial_hex());
            let known = registry.data.certificates.iter().find(|c| c.serial == serial);
            // The identity the CA issued this certificate to, not whatever its CN says (a
            // generated certificate's CN is `name@domain`, its identity `name`).
            owner = match known {
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
                Some(c) => c.id.clone(),
            };
        }
        let payload = format!(
            "{method}.{}.{}.{b64cert}",
            crate::base64::encode(uri.as_bytes()),
            crate::base64::encode(body)
        );
        medfabric_msp::verify_signature(cert.public_key(), payload.as_bytes(), &signature)
            .map_err(|e| ApiError::authentication(format!("Token signature validation failed: {e}")))?;
        let id = owner;
        let record = self
            .identity(&id)
            .ok_or_else(|| ApiError::authentication(format!("Failed to get user: {id}")))?;
        if record.revoked {
            return Err(ApiError::authentication(format!("User {id} is revoked")));
        }
        Ok(record)
    }

    /// Issues an enrollment certificate for `id` from a CSR.
    fn issue(&self, record: &IdentityRecord, body: &[u8], count_enrollment: bool) -> Result<Value, ApiError> {
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
        // Fabric CA's subject: the type and each affiliation level as OUs, in one RDN.
        let mut ous = vec![record.kind.clone()];
        ous.extend(record.affiliation.split('.').filter(|level| !level.is_empty()).map(str::to_owned));
        let ca_not_before = OffsetDateTime::from_unix_timestamp(self.ca_cert.not_before())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let ca_not_after = OffsetDateTime::from_unix_timestamp(self.ca_cert.not_after())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let not_after = (OffsetDateTime::now_utc() + time::Duration::hours(8760)).min(ca_not_after);
        let leaf = LeafRequest {
            name: Name {
                common_name: record.id.clone(),
                organizational_units: ous,
                ou_layout: OuLayout::MultiValued,
                ..Name::default()
            },
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
            // Checked again under the lock: the identity may have been revoked, removed or
            // changed (or enrolled to its limit) since the request was authenticated, and the
            // certificate must not outlive that.
            let current = data.identities.get_mut(&id).ok_or_else(|| {
                ApiError::authentication(format!("{id} was removed while its certificate was being issued"))
            })?;
            let same = current.kind == record.kind
                && current.affiliation == record.affiliation
                && current.attrs == record.attrs;
            if current.revoked || !same {
                return Err(ApiError::authentication(format!(
                    "{id} was revoked or changed while its certificate was being issued"
                )));
            }
            if count_enrollment {
                if current.max_enrollments >= 0 && current.enrollments >= current.max_enrollments {
                    return Err(ApiError::authentication(format!(
                        "Login failure: The identity {id} has already enrolled {} times, it has reached its maximum enrollment allowance",
                        current.enrollments
                    )));
                }
                current.enrollments += 1;
            }
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
        self.issue(&record, body, true)
    }

    /// `reenroll`: a new certificate for the token's identity.
    pub fn reenroll(&self, caller: &IdentityRecord, body: &[u8]) -> Result<Value, ApiError> {
        self.issue(caller, body, false)
    }

    /// `register`: by a registrar allowed to register the type, affiliation and attributes
    /// (`authority`). Type and affiliation default to the caller's; affiliation `.` is the root.
    pub fn register(&self, caller: &IdentityRecord, body: &[u8]) -> Result<Value, ApiError> {
        let request: RegisterBody = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
        // Stored in lower case: the type becomes a NodeOU, which the MSP matches exactly.
        let kind = request
            .kind
            .clone()
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| caller.kind.clone())
            .to_ascii_lowercase();
        let affiliation = match request.affiliation.as_str() {
            "" => caller.affiliation.clone(),
            "." => String::new(),
            other => other.to_owned(),
        };
        let denied =
            |why: String| ApiError::authorization(format!("Registration of '{}' failed: {why}", request.id));
        // Ids become actor ids on the ledger: a plain alphabet, so none can pose as another
        // (case, spaces, look-alike letters, control characters).
        let plain = |c: char| c.is_ascii_alphanumeric() || "._@-".contains(c);
        if request.id.is_empty() || request.id.len() > 128 || !request.id.chars().all(plain) {
            return Err(ApiError::bad_request(format!(
                "Invalid identity name {:?}: use 1-128 of [A-Za-z0-9._@-]",
                request.id
            )));
        }
        authority::can_act_on_type(caller, &kind).map_err(denied)?;
        authority::can_act_on_affiliation(caller, &affiliation).map_err(denied)?;
        authority::can_register_attributes(&request.attrs, None, caller).map_err(denied)?;
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
        let mut attrs = fixed_attributes(&request.id, &kind, &affiliation);
        for attr in request.attrs.iter().filter(|a| !a.value.is_empty()) {
            attrs.retain(|a| a.name != attr.name);
            attrs.push(attr.clone());
        }
        self.registry().update(|data| {
            unchanged(data, caller)?;
            if !affiliation.is_empty() && !data.affiliations.contains(&affiliation) {
                return Err(denied(format!("unknown affiliation '{affiliation}'")));
            }
            if data.removed.contains(&request.id) {
                return Err(ApiError::new(
                    409,
                    74,
                    format!("Identity '{}' was removed and cannot be registered again", request.id),
                ));
            }
            let taken = |id: &String| id.eq_ignore_ascii_case(&request.id);
            if data.identities.keys().any(taken) || data.removed.iter().any(taken) {
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
                    seeded: false,
                },
            );
            Ok(())
        })?;
        Ok(json!({"secret": secret}))
    }

    /// `revoke`: by id (every certificate, and the identity) or serial + AKI.
    pub fn revoke(&self, caller: &IdentityRecord, body: &[u8]) -> Result<Value, ApiError> {
        if !authority::holds(caller, authority::REVOKER) {
            return Err(ApiError::authorization("Caller does not have authority to revoke"));
        }
        let request: RevokeBody = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
        let reason = reason_code(&request.reason);
        let at = now();
        let bootstrap = self.config.bootstrap.id.as_str();
        // Anyone may revoke itself; anyone else only as a registrar that could have given the
        // identity everything it holds (revocation cannot be undone: a lesser revoker must
        // not disable a greater registrar).
        let may_revoke = |data: &crate::registry::RegistryData, owner: &str| -> Result<(), ApiError> {
            if owner == caller.id {
                return Ok(());
            }
            let target = data
                .identities
                .get(owner)
                .ok_or_else(|| ApiError::new(404, 63, format!("Identity {owner} was not found")))?;
            authority::can_take_over(caller, target, bootstrap).map_err(ApiError::authorization)
        };
        let revoked = self.registry().update(|data| {
            unchanged(data, caller)?;
            let mut revoked = Vec::new();
            if !request.id.is_empty() && request.serial.is_empty() {
                if !data.identities.contains_key(&request.id) {
                    return Err(ApiError::new(404, 63, "Failed to get User: sql: no rows in result set"));
                }
                may_revoke(data, &request.id)?;
                let identity = data.identities.get_mut(&request.id).expect("checked above");
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
                let Some(index) =
                    data.certificates.iter().position(|c| c.serial == serial && normalize_hex(&c.aki) == aki)
                else {
                    return Err(ApiError::new(
                        404,
                        66,
                        format!("Certificate with serial {serial} and AKI {aki} was not found"),
                    ));
                };
                let cert = &data.certificates[index];
                if cert.revoked_at.is_some() {
                    return Err(ApiError::new(
                        404,
                        66,
                        format!("Certificate with serial {serial} and AKI {aki} was already revoked"),
                    ));
                }
                if !request.id.is_empty() && request.id != cert.id {
                    return Err(ApiError::new(
                        400,
                        0,
                        format!(
                            "Certificate with serial {serial} and AKI {aki} is not owned by {}",
                            request.id
                        ),
                    ));
                }
                let owner = cert.id.clone();
                may_revoke(data, &owner)?;
                let cert = &mut data.certificates[index];
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
        if !authority::holds(caller, authority::GEN_CRL) {
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

    /// `GET identities`: the identities the caller could manage.
    pub fn identities(&self, caller: &IdentityRecord) -> Result<Value, ApiError> {
        if !authority::is_registrar(caller) {
            return Err(ApiError::authorization("Caller is not a registrar"));
        }
        let bootstrap = self.config.bootstrap.id.as_str();
        let list: Vec<Value> = self
            .registry()
            .data
            .identities
            .values()
            .filter(|r| authority::can_manage(caller, r, bootstrap).is_ok())
            .map(Self::identity_json)
            .collect();
        Ok(json!({"identities": list, "caname": self.config.name}))
    }

    /// The identity `id`, if the caller may manage it.
    fn managed(&self, caller: &IdentityRecord, id: &str) -> Result<IdentityRecord, ApiError> {
        // A non-registrar learns nothing, not even whether the id exists.
        if !authority::is_registrar(caller) {
            return Err(ApiError::authorization(format!("'{}' is not a registrar", caller.id)));
        }
        let record = self
            .identity(id)
            .ok_or_else(|| ApiError::new(404, 63, "Failed to get User: sql: no rows in result set"))?;
        authority::can_manage(caller, &record, &self.config.bootstrap.id).map_err(ApiError::authorization)?;
        Ok(record)
    }

    /// `GET identities/{id}` (registrars that can manage it).
    pub fn identity_info(&self, caller: &IdentityRecord, id: &str) -> Result<Value, ApiError> {
        let record = self.managed(caller, id)?;
        let mut value = Self::identity_json(&record);
        if !self.config.name.is_empty() {
            value["caname"] = json!(self.config.name);
        }
        Ok(value)
    }

    /// `DELETE identities/{id}[?force=true]` (registrars that can manage it, when removal is
    /// enabled; one's own identity only with `force`).
    pub fn remove_identity(&self, caller: &IdentityRecord, id: &str, force: bool) -> Result<Value, ApiError> {
        if !self.config.allow_identity_removal {
            return Err(ApiError::new(403, 56, "Identity removal is disabled"));
        }
        if id == caller.id && !force {
            return Err(ApiError::new(403, 56, "Need to use 'force' option to delete your own identity"));
        }
        let target = self.managed(caller, id)?;
        authority::can_take_over(caller, &target, &self.config.bootstrap.id)
            .map_err(ApiError::authorization)?;
        if target.seeded {
            return Err(ApiError::authorization(format!(
                "'{id}' was issued outside this CA; it is not removed here"
            )));
        }
        let at = now();
        let removed = self.registry().update(|data| {
            unchanged(data, caller)?;
            unchanged(data, &target)?;
            let removed = data
                .identities
                .remove(id)
                .ok_or_else(|| ApiError::new(404, 63, "Failed to get User: sql: no rows in result set"))?;
            data.removed.insert(id.to_owned());
            // As Fabric CA does: a removed identity's certificates are revoked with it.
            for cert in data.certificates.iter_mut().filter(|c| c.id == id && c.revoked_at.is_none()) {
                cert.revoked_at = Some(at);
                cert.reason = reason_code("cessationofoperation");
            }
            Ok(removed)
        })?;
        Ok(Self::identity_json(&removed))
    }

    /// `PUT identities/{id}`: type, affiliation, attributes, max enrollments, secret, by a
    /// registrar that can manage the identity and give the new type, affiliation and
    /// attributes (`authority`).
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
        let target = self.managed(caller, id)?;
        let denied = |why: String| ApiError::authorization(format!("Modifying '{id}' failed: {why}"));
        // `.` is the root affiliation; empty means unchanged.
        let affiliation = match change.affiliation.as_deref() {
            None | Some("") => None,
            Some(".") => Some(String::new()),
            Some(other) => Some(other.to_owned()),
        };
        if let Some(affiliation) = &affiliation {
            if !affiliation.is_empty() && !self.registry().data.affiliations.contains(affiliation) {
                return Err(ApiError::bad_request(format!("Affiliation '{affiliation}' is not supported")));
            }
            authority::can_act_on_affiliation(caller, affiliation).map_err(denied)?;
        }
        let kind = change.kind.clone().filter(|k| !k.is_empty()).map(|k| k.to_ascii_lowercase());
        if let Some(kind) = &kind {
            authority::can_act_on_type(caller, kind).map_err(denied)?;
        }
        // Any change — a new secret or allowance, or taking away or replacing an attribute —
        // needs a caller that could have given the identity everything it holds: otherwise a
        // lesser registrar could demote a greater one, then re-key it and become it.
        authority::can_take_over(caller, &target, &self.config.bootstrap.id).map_err(denied)?;
        let rekeys = change.secret.as_deref().is_some_and(|s| !s.is_empty())
            || change.max_enrollments.is_some_and(|m| m != 0);
        if rekeys && target.seeded {
            return Err(denied(format!("'{id}' was issued outside this CA; its secret is not set here")));
        }
        let attrs = change.attrs.clone().unwrap_or_default();
        authority::can_register_attributes(&attrs, Some(&target), caller).map_err(denied)?;
        let secret = change
            .secret
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(SecretHash::new)
            .transpose()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let default_max = self.config.max_enrollments;
        let updated = self.registry().update(|data| {
            // The checks above were made on these records: they must still be the ones stored.
            unchanged(data, caller)?;
            unchanged(data, &target)?;
            let record = data
                .identities
                .get_mut(id)
                .ok_or_else(|| ApiError::new(404, 63, "Failed to get User: sql: no rows in result set"))?;
            if let Some(kind) = kind {
                set_attr(&mut record.attrs, authority::TYPE, &kind);
                record.kind = kind;
            }
            if let Some(affiliation) = affiliation {
                set_attr(&mut record.attrs, authority::AFFILIATION, &affiliation);
                record.affiliation = affiliation;
            }
            // An empty value deletes the attribute; others replace or add it.
            for attr in attrs {
                record.attrs.retain(|a| a.name != attr.name);
                if !attr.value.is_empty() {
                    record.attrs.push(attr);
                }
            }
            match change.max_enrollments {
                None | Some(0) => {}
                Some(-2) => record.max_enrollments = default_max,
                Some(n) if n < -1 => return Err(ApiError::bad_request("max_enrollments must be -1 or more")),
                Some(n) => record.max_enrollments = n,
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
        if !authority::holds(caller, authority::AFFILIATION_MGR) {
            return Err(ApiError::authorization("not an affiliation manager"));
        }
        authority::can_act_on_affiliation(caller, name).map_err(ApiError::authorization)?;
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
        if !authority::holds(caller, authority::AFFILIATION_MGR) {
            return Err(ApiError::authorization("not an affiliation manager"));
        }
        #[derive(Deserialize)]
        struct Add {
            name: String,
        }
        let add: Add = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
        authority::can_act_on_affiliation(caller, &add.name).map_err(ApiError::authorization)?;
        authority::check_affiliation_name(&add.name).map_err(ApiError::bad_request)?;
        self.registry().update(|data| {
            if !data.affiliations.insert(add.name.clone()) {
                return Err(ApiError::new(409, 0, format!("Affiliation '{}' already exists", add.name)));
            }
            Ok(())
        })?;
        Ok(json!({"name": add.name, "caname": self.config.name}))
    }
}
