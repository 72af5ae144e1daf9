//! The CA server's integration tests: the REST API over loopback HTTP, and Fabric CA's
//! registrar authorization rules as a table over the service.

mod api;
mod authorization;

/// A root CA for a test CA server (`ca.hospital.example`), its `ca-cert.pem` and
/// `ca-key.pem` written to `dir`.
fn root_ca(dir: &std::path::Path) -> medfabric_ca::CertificateAuthority {
    let root = medfabric_testkit::TestOrg::new("hospital.example").ca;
    std::fs::write(dir.join("ca-cert.pem"), root.certificate_pem()).expect("cert");
    std::fs::write(dir.join("ca-key.pem"), root.key().to_pkcs8_pem()).expect("key");
    root
}

/// A plain-HTTP CA config over `dir` (its root from [`root_ca`], registry `registry.json`),
/// with the affiliations `hospital` and `hospital.ward1`.
fn ca_config(dir: &std::path::Path) -> medfabric_ca_server::CaConfig {
    medfabric_ca_server::CaConfig {
        name: "ca-hospital".into(),
        msp_id: "HospitalMSP".into(),
        listen_address: "127.0.0.1:0".into(),
        cert_file: dir.join("ca-cert.pem"),
        key_file: dir.join("ca-key.pem"),
        registry_file: dir.join("registry.json"),
        data_dir: None,
        max_request_body_bytes: 1 << 20,
        bootstrap: medfabric_ca_server::api::Bootstrap { id: "admin".into(), secret: "adminpw".into() },
        affiliations: vec!["hospital".into(), "hospital.ward1".into()],
        max_enrollments: -1,
        password_attempts: 10,
        allow_identity_removal: false,
        seed_identities: Vec::new(),
        tls: None,
        plain_http: true,
    }
}
