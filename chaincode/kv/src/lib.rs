//! The built-in key-value chaincode, for tests and benchmarks.
//!
//! Its functions, arguments, reads, writes and response payloads are those of the Go
//! chaincode that produced the Fabric 2.5 conformance vectors (`testdata/fabric-2.5`),
//! so our peer can re-endorse that channel's transactions and compare read-write sets
//! byte for byte.
//!
//! | function | arguments | reads | writes |
//! |---|---|---|---|
//! | `put` | key, value | - | key = value |
//! | `get` | key | key | - (payload: the value) |
//! | `del` | key | - | delete key |
//! | `create` | key, value | key (must be absent) | key = value |
//! | `inc` | key | key | key = n + 1 (payload: n + 1) |
//! | `rangeput` | start, end, key, value | [start, end) | key = value (payload: keys seen) |
//! | `bigrange` | prefix | [prefix, prefix + "~") | "count:" + prefix = keys seen |
//! | `seed` | prefix, n, value | - | prefix + "000" … prefix + (n-1) = value |
//! | `composite` | type, a, b, value | - | composite key (type, a, b) = value (payload: the key) |
//! | `partial` | type, a | partial composite range (type, a) | "partial:type:a" = keys seen |
//! | `event` | name, payload | - | "event:" + name = payload, and the event |
//! | `sbe` | key, orgs | - | key-level policy: a peer of every listed org |
//! | `callput` | chaincode, key, value | - | "via:" + key = value, then `put(key, value)` of chaincode |
//!
//! Private data (medfabric additions; values come in the transient map under `value`,
//! so they never enter a block):
//!
//! | function | arguments | reads | writes |
//! |---|---|---|---|
//! | `putpvt` | collection, key | - | private key = transient `value` |
//! | `getpvt` | collection, key | private key | - (payload: the value) |
//! | `hashpvt` | collection, key | private key hash | - (payload: hex SHA-256 of the value) |
//! | `delpvt` | collection, key | - | delete private key |
//! | `purgepvt` | collection, key | - | purge private key (every version, on every member peer) |
//! | `incpvt` | collection, key | private key | private key = n + 1 (payload: n + 1) |
//! | `sbepvt` | collection, key, orgs | - | key-level policy of the private key: a peer of every listed org |

use bytes::Bytes;
use medfabric_shim::{ChaincodeStub, ContractError, Router};

/// Most keys one `seed` call writes.
pub const MAX_SEED: u32 = 1000;

type Outcome<T> = Result<T, ContractError>;

/// The key-value chaincode as a [`Router`].
pub fn chaincode() -> Router {
    Router::new("kv")
        .route("put", put)
        .route("get", get)
        .route("del", del)
        .route("create", create)
        .route("inc", inc)
        .route("rangeput", rangeput)
        .route("bigrange", bigrange)
        .route("seed", seed)
        .route("composite", composite)
        .route("partial", partial)
        .route("event", event)
        .route("sbe", sbe)
        .route("callput", callput)
        .route("putpvt", putpvt)
        .route("getpvt", getpvt)
        .route("hashpvt", hashpvt)
        .route("delpvt", delpvt)
        .route("purgepvt", purgepvt)
        .route("incpvt", incpvt)
        .route("sbepvt", sbepvt)
}

/// Transient-map entry holding the value of `putpvt`.
pub const TRANSIENT_VALUE: &str = "value";

fn putpvt(stub: &mut dyn ChaincodeStub, (collection, key): (String, String)) -> Outcome<()> {
    let Some(value) = stub.transient().get(TRANSIENT_VALUE).cloned() else {
        return Err(ContractError::new(format!("transient data must carry {TRANSIENT_VALUE:?}")));
    };
    Ok(stub.put_private_data(&collection, &key, value)?)
}

fn getpvt(stub: &mut dyn ChaincodeStub, (collection, key): (String, String)) -> Outcome<String> {
    match stub.get_private_data(&collection, &key)? {
        Some(value) => Ok(String::from_utf8_lossy(&value).into_owned()),
        None => Err(ContractError::new(format!("not found: {key}"))),
    }
}

fn hashpvt(stub: &mut dyn ChaincodeStub, (collection, key): (String, String)) -> Outcome<String> {
    match stub.get_private_data_hash(&collection, &key)? {
        Some(hash) => Ok(hash.iter().map(|b| format!("{b:02x}")).collect()),
        None => Err(ContractError::new(format!("not found: {key}"))),
    }
}

fn delpvt(stub: &mut dyn ChaincodeStub, (collection, key): (String, String)) -> Outcome<()> {
    Ok(stub.del_private_data(&collection, &key)?)
}

fn purgepvt(stub: &mut dyn ChaincodeStub, (collection, key): (String, String)) -> Outcome<()> {
    Ok(stub.purge_private_data(&collection, &key)?)
}

fn incpvt(stub: &mut dyn ChaincodeStub, (collection, key): (String, String)) -> Outcome<String> {
    let current = match stub.get_private_data(&collection, &key)? {
        None => 0,
        Some(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| ContractError::new(format!("value of {key} is not an integer")))?,
    };
    let next = current + 1;
    stub.put_private_data(&collection, &key, Bytes::from(next.to_string()))?;
    Ok(next.to_string())
}

fn put(stub: &mut dyn ChaincodeStub, (key, value): (String, String)) -> Outcome<()> {
    Ok(stub.put_state(&key, Bytes::from(value))?)
}

fn get(stub: &mut dyn ChaincodeStub, (key,): (String,)) -> Outcome<String> {
    match stub.get_state(&key)? {
        Some(value) => Ok(String::from_utf8_lossy(&value).into_owned()),
        None => Err(ContractError::new(format!("not found: {key}"))),
    }
}

fn del(stub: &mut dyn ChaincodeStub, (key,): (String,)) -> Outcome<()> {
    Ok(stub.del_state(&key)?)
}

fn create(stub: &mut dyn ChaincodeStub, (key, value): (String, String)) -> Outcome<()> {
    if stub.get_state(&key)?.is_some() {
        return Err(ContractError::new(format!("key exists: {key}")));
    }
    Ok(stub.put_state(&key, Bytes::from(value))?)
}

fn inc(stub: &mut dyn ChaincodeStub, (key,): (String,)) -> Outcome<String> {
    let current = match stub.get_state(&key)? {
        None => 0,
        Some(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| ContractError::new(format!("value of {key} is not an integer")))?,
    };
    let next = current.checked_add(1).ok_or_else(|| ContractError::new(format!("{key} overflows")))?;
    stub.put_state(&key, Bytes::from(next.to_string()))?;
    Ok(next.to_string())
}

fn rangeput(
    stub: &mut dyn ChaincodeStub,
    (start, end, key, value): (String, String, String, String),
) -> Outcome<String> {
    let seen = stub.get_state_by_range(&start, &end)?.len();
    stub.put_state(&key, Bytes::from(value))?;
    Ok(seen.to_string())
}

fn bigrange(stub: &mut dyn ChaincodeStub, (prefix,): (String,)) -> Outcome<String> {
    let seen = stub.get_state_by_range(&prefix, &format!("{prefix}~"))?.len();
    stub.put_state(&format!("count:{prefix}"), Bytes::from(seen.to_string()))?;
    Ok(seen.to_string())
}

fn seed(stub: &mut dyn ChaincodeStub, (prefix, n, value): (String, String, String)) -> Outcome<()> {
    let n: u32 = n.parse().map_err(|_| ContractError::new(format!("n must be a number, got {n:?}")))?;
    if n > MAX_SEED {
        return Err(ContractError::new(format!("n must be at most {MAX_SEED}")));
    }
    for i in 0..n {
        stub.put_state(&format!("{prefix}{i:03}"), Bytes::from(value.clone()))?;
    }
    Ok(())
}

fn composite(
    stub: &mut dyn ChaincodeStub,
    (object_type, a, b, value): (String, String, String, String),
) -> Outcome<String> {
    let key = stub.create_composite_key(&object_type, &[&a, &b])?;
    stub.put_state(&key, Bytes::from(value))?;
    Ok(key)
}

fn partial(stub: &mut dyn ChaincodeStub, (object_type, a): (String, String)) -> Outcome<String> {
    let seen = stub.get_state_by_partial_composite_key(&object_type, &[&a])?.len();
    stub.put_state(&format!("partial:{object_type}:{a}"), Bytes::from(seen.to_string()))?;
    Ok(seen.to_string())
}

fn event(stub: &mut dyn ChaincodeStub, (name, payload): (String, String)) -> Outcome<()> {
    stub.put_state(&format!("event:{name}"), Bytes::from(payload.clone()))?;
    Ok(stub.set_event(&name, Bytes::from(payload))?)
}

fn sbe(stub: &mut dyn ChaincodeStub, (key, orgs): (String, String)) -> Outcome<()> {
    let policy = peers_of_every(&orgs)?;
    Ok(stub.set_state_validation_parameter(&key, policy)?)
}

fn sbepvt(stub: &mut dyn ChaincodeStub, (collection, key, orgs): (String, String, String)) -> Outcome<()> {
    let policy = peers_of_every(&orgs)?;
    Ok(stub.set_private_data_validation_parameter(&collection, &key, policy)?)
}

/// `AND('<org>.peer', …)` of the comma-separated MSP ids, serialized.
fn peers_of_every(orgs: &str) -> Outcome<Bytes> {
    let orgs: Vec<&str> = orgs.split(',').collect();
    Ok(medfabric_shim::statebased::peers_of_every(&orgs)?)
}

fn callput(
    stub: &mut dyn ChaincodeStub,
    (chaincode, key, value): (String, String, String),
) -> Outcome<String> {
    stub.put_state(&format!("via:{key}"), Bytes::from(value.clone()))?;
    let args = [Bytes::from_static(b"put"), Bytes::from(key), Bytes::from(value)];
    let response = stub.invoke_chaincode(&chaincode, &args, "")?;
    if response.status >= medfabric_shim::ERROR_THRESHOLD {
        return Err(ContractError::new(format!("{chaincode} put failed: {}", response.message)));
    }
    Ok(String::from_utf8_lossy(&response.payload).into_owned())
}
