use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use medfabric_proto::msp::{FabricMspConfig, SerializedIdentity};
use prost::Message;

use crate::cert::Certificate;
use crate::error::MspError;
use crate::identity::Identity;
use crate::msp::Msp;

/// Default number of serialized identities whose validation result is cached.
pub const DEFAULT_IDENTITY_CACHE_ENTRIES: usize = 4096;

type CacheEntry = Result<Arc<Identity>, MspError>;

/// The MSPs of one channel (one config sequence) and a bounded cache of validated
/// identities keyed by their serialized bytes. A config update builds a new manager,
/// so cached verdicts never outlive the CRLs and roots they were checked against.
#[derive(Debug)]
pub struct MspManager {
    msps: BTreeMap<String, Arc<Msp>>,
    cache: RwLock<HashMap<Vec<u8>, CacheEntry>>,
    cache_capacity: usize,
}

impl MspManager {
    pub fn new(msps: impl IntoIterator<Item = Msp>) -> Self {
        Self::with_cache_capacity(msps, DEFAULT_IDENTITY_CACHE_ENTRIES)
    }

    pub fn with_cache_capacity(msps: impl IntoIterator<Item = Msp>, cache_capacity: usize) -> Self {
        Self {
            msps: msps.into_iter().map(|m| (m.id().to_owned(), Arc::new(m))).collect(),
            cache: RwLock::new(HashMap::new()),
            cache_capacity: cache_capacity.max(1),
        }
    }

    pub fn from_configs<'a>(
        configs: impl IntoIterator<Item = &'a FabricMspConfig>,
    ) -> Result<Self, MspError> {
        let msps = configs.into_iter().map(Msp::from_config).collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(msps))
    }

    pub fn msp(&self, id: &str) -> Option<&Msp> {
        self.msps.get(id).map(|m| m.as_ref())
    }

    pub fn msp_ids(&self) -> impl Iterator<Item = &str> {
        self.msps.keys().map(String::as_str)
    }

    /// Reads and validates a marshaled `SerializedIdentity`. The verdict, good or bad,
    /// is cached: a certificate is parsed and chain-checked once.
    pub fn deserialize(&self, serialized: &[u8]) -> Result<Arc<Identity>, MspError> {
        if let Some(hit) = self.read_cache().get(serialized) {
            return hit.clone();
        }
        let verdict = self.deserialize_uncached(serialized);
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.cache_capacity {
            // Evict an arbitrary entry: HashMap order is effectively random.
            if let Some(victim) = cache.keys().next().cloned() {
                cache.remove(&victim);
            }
        }
        cache.insert(serialized.to_vec(), verdict.clone());
        verdict
    }

    /// [`deserialize`](Self::deserialize), then rejects a certificate outside its validity
    /// period at `unix_seconds` — what an endorser, gateway or orderer checks for a
    /// request arriving now (Fabric's ExpirationCheck).
    pub fn deserialize_at(&self, serialized: &[u8], unix_seconds: i64) -> Result<Arc<Identity>, MspError> {
        let identity = self.deserialize(serialized)?;
        identity.check_validity_at(unix_seconds)?;
        Ok(identity)
    }

    /// Number of cached verdicts.
    pub fn cached_identities(&self) -> usize {
        self.read_cache().len()
    }

    /// Parses and validates without touching the cache.
    pub fn deserialize_uncached(&self, serialized: &[u8]) -> Result<Arc<Identity>, MspError> {
        let sid =
            SerializedIdentity::decode(serialized).map_err(|e| MspError::MalformedIdentity(e.to_string()))?;
        let msp = self.msps.get(&sid.mspid).ok_or_else(|| MspError::UnknownMsp(sid.mspid.clone()))?;
        let certificate = Certificate::from_pem(&sid.id_bytes)?;
        let identity = msp.validate(Bytes::copy_from_slice(serialized), certificate)?;
        Ok(Arc::new(identity))
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Vec<u8>, CacheEntry>> {
        self.cache.read().unwrap_or_else(|e| e.into_inner())
    }
}
