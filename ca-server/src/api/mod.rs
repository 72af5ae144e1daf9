//! The CA's operations, sans-HTTP: each takes the authenticated caller and the request
//! body and returns the `result` JSON or an [`ApiError`] with Fabric CA's HTTP status,
//! code and (remote) message (`docs/fabric-ca.md`).

use std::sync::Mutex;

use anyhow::{Context, Result};
use medfabric_ca::CertificateAuthority;
use medfabric_msp::Certificate;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

mod affiliations;
mod enroll;
mod identities;
mod register;
mod revoke;

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

/// An identity's enrollment limit under the CA's (`-1`: unlimited): the CA's limit
/// caps any larger or unlimited one.
fn enrollment_limit(identity: i32, ca: i32) -> i32 {
    if ca != -1 && (identity == -1 || identity > ca) { ca } else { identity }
}

/// The limit a registration asks for (`0`: the CA's), checked against the CA's, as
/// Fabric CA's registrar rules have it.
fn requested_enrollment_limit(requested: i32, ca: i32) -> Result<i32, ApiError> {
    let refuse = |message: String| Err(ApiError::new(400, 82, message));
    if requested < -1 {
        return refuse(format!(
            "Max enrollment in registration request may not be less than -1, but was {requested}"
        ));
    }
    match (ca, requested) {
        (-1, 0) => Ok(-1),
        (-1, n) => Ok(n),
        (0, _) => refuse("Registration is disabled".into()),
        (_, -1) => refuse("Registration for infinite enrollments is not allowed".into()),
        (ca, 0) => Ok(ca),
        (ca, n) if n > ca => {
            refuse(format!("Requested enrollments ({n}) exceeds maximum allowable enrollments ({ca})"))
        }
        (_, n) => Ok(n),
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
        if config.max_enrollments < -1 {
            anyhow::bail!(
                "max_enrollments is {}: -1 (unlimited), 0 (disabled) or a limit",
                config.max_enrollments
            );
        }
        let mut registry = Registry::open(&config.registry_file)?;
        // A restart is the operator's way to unlock the bootstrap admin, whom anyone who
        // knows its id can lock out with wrong passwords (as in Fabric CA).
        registry.data.failed_logins.remove(&config.bootstrap.id);
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

    /// HTTP Basic `id:secret` → the identity id. As Fabric CA: a CA whose limit is 0
    /// enrolls nobody; an identity locked by wrong passwords is refused before its secret
    /// is checked; a wrong password counts against it, a right one clears the count; the
    /// CA's limit caps the identity's own.
    pub fn authenticate_basic(&self, header: Option<&str>) -> Result<String, ApiError> {
        let Some(header) = header else { return Err(ApiError::no_authorization_header()) };
        let encoded = header.strip_prefix("Basic ").ok_or_else(|| ApiError::authentication("not Basic"))?;
        let decoded = crate::base64::decode(encoded).ok_or_else(|| ApiError::authentication("bad base64"))?;
        let text = String::from_utf8(decoded).map_err(|_| ApiError::authentication("not UTF-8"))?;
        let (id, secret) = text.split_once(':').ok_or_else(|| ApiError::authentication("no ':'"))?;
        if self.config.max_enrollments == 0 {
            return Err(ApiError::authentication("Enroll is disabled"));
        }
        let record =
            self.identity(id).ok_or_else(|| ApiError::authentication(format!("Failed to get user: {id}")))?;
        let allowed = self.config.password_attempts;
        let failed = self.registry().data.failed_logins.get(id).copied().unwrap_or(0);
        if allowed > 0 && failed >= allowed {
            return Err(ApiError::new(
                401,
                73,
                format!(
                    "Incorrect password entered {failed} times, max incorrect password limit of {allowed} reached"
                ),
            ));
        }
        if !record.secret.matches(secret) {
            // Counted under the lock (concurrent guesses each count), and only where a
            // count can lock something: not without a limit, not for an identity issued
            // outside this CA (no password of it ever matches). A failed write answers as
            // any failed login does.
            if allowed > 0 && !record.seeded {
                let counted = self.registry().update(|data| {
                    let count = data.failed_logins.entry(id.to_owned()).or_default();
                    *count = count.saturating_add(1);
                    Ok(())
                });
                if let Err(e) = counted {
                    tracing::error!("recording a failed login: {}", e.detail);
                }
            }
            return Err(ApiError::authentication("Login failure: Password mismatch"));
        }
        if record.revoked {
            return Err(ApiError::authentication(format!(
                "Login failure: User {id} is revoked; access denied"
            )));
        }
        let max = enrollment_limit(record.max_enrollments, self.config.max_enrollments);
        if max >= 0 && record.enrollments >= max {
            return Err(ApiError::authentication(format!(
                "Login failure: The identity {id} has already enrolled {} times, it has reached its maximum enrollment allowance",
                record.enrollments
            )));
        }
        if failed > 0 {
            // Checked again under the lock: guesses that failed meanwhile keep counting,
            // and a lock reached meanwhile holds.
            self.registry()
                .update(|data| {
                    let now = data.failed_logins.get(id).copied().unwrap_or(0);
                    if allowed > 0 && now >= allowed {
                        return Err(ApiError::authentication("locked while the password was checked"));
                    }
                    if now == failed {
                        data.failed_logins.remove(id);
                    }
                    Ok(())
                })
                .map_err(|e| ApiError::authentication(e.detail))?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollment_limits_follow_fabric_ca() {
        // (identity, CA) → the limit enforced at enrollment.
        for (identity, ca, enforced) in [(-1, -1, -1), (5, -1, 5), (-1, 2, 2), (5, 2, 2), (1, 2, 1)] {
            assert_eq!(enrollment_limit(identity, ca), enforced, "identity {identity}, CA {ca}");
        }
        // (requested, CA) → the stored limit, or Fabric CA's code 82.
        for (requested, ca, stored) in [
            (0, -1, Some(-1)),
            (-1, -1, Some(-1)),
            (7, -1, Some(7)),
            (0, 3, Some(3)),
            (3, 3, Some(3)),
            (1, 3, Some(1)),
        ] {
            assert_eq!(
                requested_enrollment_limit(requested, ca).ok(),
                stored,
                "requested {requested}, CA {ca}"
            );
        }
        for (requested, ca) in [(-2, -1), (1, 0), (0, 0), (-1, 3), (4, 3)] {
            let refused = requested_enrollment_limit(requested, ca).expect_err("refused");
            assert_eq!((refused.status, refused.code), (400, 82), "requested {requested}, CA {ca}");
        }
    }
}
