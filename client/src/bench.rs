//! Micro-benchmarks of the identity and signature hot path (`medfabric bench msp`).

use std::time::{Duration, Instant};

use anyhow::Result;
use medfabric_ca::{CertificateAuthority, LeafRequest, Name, Validity};
use medfabric_msp::{Msp, MspManager, SigningIdentity, node_ou_msp_config};
use serde::Serialize;
use time::OffsetDateTime;

#[derive(Debug, Serialize)]
pub struct MspBench {
    pub seconds_per_measure: f64,
    pub deserialize_cold_per_sec: f64,
    pub deserialize_cached_per_sec: f64,
    pub verify_per_sec: f64,
    pub sign_per_sec: f64,
}

/// Runs each measurement for about `duration` on one thread.
pub fn msp(duration: Duration) -> Result<MspBench> {
    let now = OffsetDateTime::now_utc();
    let ca = CertificateAuthority::new_root(
        &Name::fabric_style("ca.bench", Some("bench"), &[]),
        Validity::days_from(now, 30),
    )?;
    let issued = ca.issue(&LeafRequest::enrollment("user", "client", Validity::days_from(now, 30)))?;
    let key = issued.key_pem();
    let signer = SigningIdentity::new("BenchMSP", issued.certificate_pem.as_bytes(), &key)?;
    let config = node_ou_msp_config("BenchMSP", ca.certificate_pem().as_bytes());
    let msps = MspManager::new([Msp::from_config(&config)?]);
    let serialized = signer.serialized().clone();
    let message = vec![7u8; 300];
    let signature = signer.sign(&message);
    let identity = msps.deserialize(&serialized)?;

    let rate = |f: &mut dyn FnMut()| -> f64 {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < duration {
            for _ in 0..16 {
                f();
            }
            n += 16;
        }
        n as f64 / start.elapsed().as_secs_f64()
    };
    let cold = rate(&mut || {
        std::hint::black_box(msps.deserialize_uncached(&serialized).is_ok());
    });
    let cached = rate(&mut || {
        std::hint::black_box(msps.deserialize(&serialized).is_ok());
    });
    let verify = rate(&mut || {
        std::hint::black_box(identity.verify(&message, &signature).is_ok());
    });
    let sign = rate(&mut || {
        std::hint::black_box(signer.sign(&message));
    });
    Ok(MspBench {
        seconds_per_measure: duration.as_secs_f64(),
        deserialize_cold_per_sec: cold.round(),
        deserialize_cached_per_sec: cached.round(),
        verify_per_sec: verify.round(),
        sign_per_sec: sign.round(),
    })
}
