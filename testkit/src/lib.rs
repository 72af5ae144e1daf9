//! Fixtures for tests: [`TestOrg`], a throwaway organization (root CA + NodeOU MSP)
//! issued by medfabric-ca, with identities, revocation and its MSP.

use std::collections::BTreeMap;

use medfabric_ca::{CertificateAuthority, Issued, LeafRequest, Name, RevokedEntry, Validity};
use medfabric_msp::{Msp, MspManager, SigningIdentity, node_ou_msp_config};
use medfabric_proto::msp::FabricMspConfig;
use time::OffsetDateTime;

pub struct TestOrg {
    pub msp_id: String,
    pub ca: CertificateAuthority,
    pub crls: Vec<String>,
}

impl TestOrg {
    pub fn new(msp_id: &str) -> Self {
        let ca = CertificateAuthority::new_root(
            &Name::fabric_style(&format!("ca.{msp_id}"), Some(msp_id), &[]),
            Validity::days_from(OffsetDateTime::now_utc() - time::Duration::days(1), 3650),
        )
        .expect("root CA");
        Self { msp_id: msp_id.to_owned(), ca, crls: Vec::new() }
    }

    /// A leaf certificate as the CA issued it, with the key it generated.
    pub fn issue_leaf(
        &self,
        cn: &str,
        ou: &str,
        attrs: Option<BTreeMap<String, String>>,
        validity: Validity,
    ) -> Issued {
        self.ca
            .issue(&LeafRequest { attributes: attrs, ..LeafRequest::enrollment(cn, ou, validity) })
            .expect("issue")
    }

    pub fn issue_with(
        &self,
        cn: &str,
        ou: &str,
        attrs: Option<BTreeMap<String, String>>,
        validity: Validity,
    ) -> SigningIdentity {
        let issued = self.issue_leaf(cn, ou, attrs, validity);
        SigningIdentity::new(
            &self.msp_id,
            issued.certificate_pem.as_bytes(),
            &issued.key.expect("generated key").to_pkcs8_pem(),
        )
        .expect("signing identity")
    }

    pub fn issue(&self, cn: &str, ou: &str) -> SigningIdentity {
        self.issue_with(
            cn,
            ou,
            None,
            Validity::days_from(OffsetDateTime::now_utc() - time::Duration::hours(1), 365),
        )
    }

    /// A leaf certificate and its PKCS#8 key (PEM), valid for a year.
    pub fn issue_pem(&self, cn: &str, ou: &str) -> (String, String) {
        let now = OffsetDateTime::now_utc();
        let issued = self
            .ca
            .issue(&LeafRequest::enrollment(cn, ou, Validity::days_from(now - time::Duration::hours(1), 365)))
            .expect("issue");
        let key = issued.key_pem();
        (issued.certificate_pem, key)
    }

    /// An MSP folder for a new identity (`signcerts/cert.pem`, `keystore/key.pem`).
    pub fn write_msp_dir(&self, cn: &str, ou: &str, dir: &std::path::Path) {
        let (cert, key) = self.issue_pem(cn, ou);
        std::fs::create_dir_all(dir.join("signcerts")).expect("mkdir");
        std::fs::create_dir_all(dir.join("keystore")).expect("mkdir");
        std::fs::write(dir.join("signcerts/cert.pem"), cert).expect("cert");
        std::fs::write(dir.join("keystore/key.pem"), key).expect("key");
    }

    pub fn revoke(&mut self, identity: &SigningIdentity) {
        let cert = medfabric_msp::Certificate::from_pem(identity.certificate_pem()).expect("cert");
        let now = OffsetDateTime::now_utc();
        let crl = self
            .ca
            .revocation_list(
                &[RevokedEntry { serial: cert.serial().to_vec(), revoked_at: now }],
                now,
                now + time::Duration::days(7),
                1,
            )
            .expect("crl");
        self.crls.push(crl);
    }

    pub fn msp_config(&self) -> FabricMspConfig {
        let mut config = node_ou_msp_config(&self.msp_id, self.ca.certificate_pem().as_bytes());
        config.revocation_list = self.crls.iter().map(|c| c.clone().into_bytes().into()).collect();
        config
    }

    pub fn msp(&self) -> Msp {
        Msp::from_config(&self.msp_config()).expect("msp")
    }
}

pub fn manager(orgs: &[&TestOrg]) -> MspManager {
    MspManager::new(orgs.iter().map(|o| o.msp()))
}
