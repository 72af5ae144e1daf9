//! The CA server's integration tests: the REST API over loopback HTTP, and Fabric CA's
//! registrar authorization rules as a table over the service.

mod api;
mod authorization;

/// A root CA for a test CA server, its `ca-cert.pem` and `ca-key.pem` written to `dir`.
fn root_ca(dir: &std::path::Path) -> medfabric_ca::CertificateAuthority {
    use medfabric_ca::{CertificateAuthority, Name, Validity};
    let now = time::OffsetDateTime::now_utc();
    let root = CertificateAuthority::new_root(
        &Name::fabric_style("ca.hospital.example", Some("hospital.example"), &[]),
        Validity::days_from(now - time::Duration::hours(1), 365),
    )
    .expect("root");
    std::fs::write(dir.join("ca-cert.pem"), root.certificate_pem()).expect("cert");
    std::fs::write(dir.join("ca-key.pem"), root.key().to_pkcs8_pem()).expect("key");
    root
}
