//! medfabric's certificate authority.
//!
//! Today this is the offline issuer behind `medfabric network generate` (the
//! equivalent of Fabric's cryptogen): a [`CertificateAuthority`] issues ECDSA P-256
//! certificates with Fabric's NodeOU subject layout and Fabric CA's attribute
//! extension, and signs CRLs. Issuance is sans-IO: times come in as arguments and
//! nothing touches the disk.

mod authority;
mod der;
mod key;

pub use authority::{
    CaError, CertificateAuthority, Issued, LeafRequest, Name, OuLayout, RevokedEntry, Usage, Validity,
    ski_hex,
};
pub use key::KeyPair;
