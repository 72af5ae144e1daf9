use thiserror::Error;

/// Why a signature was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SignatureError {
    #[error("signature is not a DER-encoded ECDSA signature")]
    Malformed,
    #[error("invalid S: signature S must be at most half the curve order (low-S)")]
    HighS,
    #[error("public key is not an uncompressed P-256 point")]
    BadPublicKey,
    #[error("signature does not verify with the signer's public key")]
    Mismatch,
}

/// Why an identity, certificate or MSP configuration was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MspError {
    #[error("serialized identity is not a valid protobuf message: {0}")]
    MalformedIdentity(String),
    #[error("MSP {0:?} is not a member of this channel")]
    UnknownMsp(String),
    #[error("no PEM certificate found in identity bytes")]
    MalformedPem,
    #[error("certificate cannot be parsed: {0}")]
    BadCertificate(String),
    #[error("certificate key is not ECDSA P-256")]
    UnsupportedKey,
    #[error("a CA certificate cannot be used as a signing identity")]
    CaCertificateAsSigner,
    #[error("certificate is not issued by a CA of MSP {msp_id}")]
    UntrustedChain { msp_id: String },
    #[error(
        "certificate is issued by a CA that also issues intermediate CAs; only leaf CAs may issue identities"
    )]
    IssuerNotLeafCa,
    #[error("certificate (serial {serial}) is revoked by a CRL of its issuer")]
    Revoked { serial: String },
    #[error("certificate expired at unix time {not_after}")]
    Expired { not_after: i64 },
    #[error("certificate is not valid before unix time {not_before}")]
    NotYetValid { not_before: i64 },
    #[error("identity has {found} NodeOU roles; exactly one of client, peer, admin, orderer is required")]
    NodeOuRole { found: usize },
    #[error("identity's NodeOU {ou:?} is not certified by the CA named in the MSP's NodeOU config")]
    NodeOuCertifier { ou: String },
    #[error("invalid MSP configuration for {msp_id}: {why}")]
    Config { msp_id: String, why: String },
    #[error("cannot read MSP folder {path}: {why}")]
    Folder { path: String, why: String },
    #[error("private key cannot be loaded: {0}")]
    BadPrivateKey(String),
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// Why a policy could not be parsed or evaluated.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PolicyError {
    #[error("policy syntax error at byte {at}: {why}")]
    Syntax { at: usize, why: String },
    #[error("policy is malformed: {0}")]
    Malformed(String),
    #[error("no policy at {0}")]
    NotFound(String),
}
