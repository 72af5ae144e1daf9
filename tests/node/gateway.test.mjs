// Acceptance test: the unmodified @hyperledger/fabric-gateway Node client (and @grpc/grpc-js)
// against a medfabric network over TLS. Expected answers follow the behaviour of a real
// Fabric 2.5 peer (see docs/fabric-gateway.md).
//
// Env: MEDFABRIC_BIN (required) = path of the `medfabric` CLI;
//      MEDFABRIC_NETWORK_CONFIG (optional) = network config, default <repo>/network-config/dev.yaml;
//      MEDFABRIC_KEEP_DATA (optional) = if set, keep the temporary network directory (logs).
// Run: npm test (in tests/node)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as grpc from '@grpc/grpc-js';
import {
    checkpointers,
    CommitError,
    connect,
    EndorseError,
    GatewayError,
    signers,
    StatusCode,
} from '@hyperledger/fabric-gateway';
import { common, ledger, peer } from '@hyperledger/fabric-protos';

const CHANNEL = 'medchannel';
const CC_OR = 'kv'; // OR('HospitalMSP.peer', 'LabMSP.peer')
const CC_AND = 'kvand'; // AND('HospitalMSP.peer', 'LabMSP.peer')
const HOSPITAL = 'HospitalMSP';
const LAB = 'LabMSP';
const SHARED = 'shared'; // private data collection of kv; members HospitalMSP and LabMSP
const LAB_ONLY = 'labonly'; // members: LabMSP only; member-only read and write

const NETWORK_UP_TIMEOUT_MS = 180_000;
const NETWORK_DOWN_TIMEOUT_MS = 120_000;
const STATUS_TIMEOUT_MS = 30_000;
const TEST_TIMEOUT_MS = 180_000;
const EVENT_READ_TIMEOUT_MS = 30_000;
const PEER_CATCH_UP_MS = 10_000;

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const RUN = Date.now().toString(36); // unique suffix for keys and event names
const utf8 = new TextDecoder();

/** Set up in before(), torn down in after(). */
const ctx = {
    bin: undefined,
    tmpDir: undefined,
    dataDir: undefined,
    networkStarted: false, // `network up` was run (maybe failed): after() runs `network down`
    networkUp: false, // `network up` succeeded: a failing `network down` fails the run
    status: undefined,
    /** @type {Array<{close(): void}>} closed in reverse order in after() */
    closeables: [],
};
/**
 * @typedef {object} OrgClient
 * @property {import('@hyperledger/fabric-gateway').Gateway} gateway
 * @property {import('@hyperledger/fabric-gateway').Network} network
 * @property {import('@hyperledger/fabric-gateway').Contract} contract the `kv` chaincode
 * @property {any} peerNode the peer's entry in `network status --json`
 * @property {any} user the user's entry in `network status --json`
 */
/** @type {OrgClient} drhouse (HospitalMSP) through the Hospital peer */
let hospital;
/** @type {OrgClient} tech1 (LabMSP) through the Lab peer */
let lab;

// ---------------------------------------------------------------------------------------------
// Helpers

/** An error for setup problems, reported without a (useless) stack trace. */
function setupError(message) {
    const err = new Error(message);
    err.stack = `Error: ${message}`;
    return err;
}

function key(name) {
    return `${name}-${RUN}`;
}

function deadline(ms) {
    return () => ({ deadline: Date.now() + ms });
}

/** Runs `medfabric <args>`; stdout goes to a file (returned as text), stderr is inherited. */
function runMedfabric(args, timeoutMs) {
    // stdout goes to a file, not a pipe: if `network up` leaves node processes holding its
    // stdout, spawnSync would wait on a pipe until the timeout.
    const outFile = path.join(ctx.tmpDir, `medfabric-${args.slice(0, 2).join('-')}-${Date.now()}.out`);
    const outFd = fs.openSync(outFile, 'w');
    let result;
    try {
        result = spawnSync(ctx.bin, args, { stdio: ['ignore', outFd, 'inherit'], timeout: timeoutMs });
    } finally {
        fs.closeSync(outFd);
    }
    const stdout = fs.readFileSync(outFile, 'utf8');
    const command = `${ctx.bin} ${args.join(' ')}`;
    const shown = stdout.trim() ? `\nits stdout:\n${stdout}` : '';
    if (result.error) {
        const why = result.error.code === 'ETIMEDOUT' ? `timed out after ${timeoutMs / 1000} s` : result.error.message;
        throw setupError(`\`${command}\` failed: ${why}${shown}`);
    }
    if (result.status !== 0) {
        const how = result.signal ? `was killed by ${result.signal}` : `exited with status ${result.status}`;
        throw setupError(`\`${command}\` ${how} (its stderr is above)${shown}`);
    }
    return stdout;
}

function readFile(file, what) {
    if (typeof file !== 'string' || file === '') {
        throw setupError(`network status --json: ${what} is missing`);
    }
    try {
        return fs.readFileSync(file);
    } catch (err) {
        throw setupError(`network status --json: cannot read ${what} ${file}: ${err.message}`);
    }
}

function findPeer(mspId) {
    const node = ctx.status.nodes.find((n) => n.role === 'peer' && n.org === mspId);
    if (!node) {
        throw setupError(`network status --json lists no peer of ${mspId}`);
    }
    if (!node.address) {
        throw setupError(`network status --json: peer ${node.name} has no address`);
    }
    return node;
}

function findUser(name, mspId) {
    const user = ctx.status.users.find((u) => u.name === name && u.org === mspId);
    if (!user) {
        throw setupError(`network status --json lists no user ${name} of ${mspId}`);
    }
    return user;
}

/**
 * A gRPC client to a peer. Mutual TLS with the user's TLS client certificate unless
 * `serverOnlyTls`. The mutual-TLS client checks the server certificate against the address
 * as given (an IP SAN); the server-only one sets the TLS host name override (a DNS SAN).
 */
function newGrpcClient(peerNode, user, { serverOnlyTls = false } = {}) {
    const tlsCa = readFile(peerNode.tls_ca_file, `tls_ca_file of ${peerNode.name}`);
    let credentials;
    let options = {};
    if (serverOnlyTls) {
        credentials = grpc.credentials.createSsl(tlsCa);
        if (peerNode.tls_host) {
            options = { 'grpc.ssl_target_name_override': peerNode.tls_host };
        }
    } else {
        const clientKey = readFile(user.tls_key_file, `tls_key_file of ${user.name}`);
        const clientCert = readFile(user.tls_cert_file, `tls_cert_file of ${user.name}`);
        credentials = grpc.credentials.createSsl(tlsCa, clientKey, clientCert);
    }
    const client = new grpc.Client(peerNode.address, credentials, options);
    ctx.closeables.push(client);
    return client;
}

/**
 * A connected Gateway for `user` over `client`. With `mutualTls`, block event requests carry
 * the SHA-256 of the user's TLS client certificate, as the fabric-gateway docs ask for mutual
 * TLS (the peer's Deliver checks it against the certificate of the connection).
 */
function newGateway(client, user, { mutualTls = true } = {}) {
    let tlsClientCertificateHash;
    if (mutualTls) {
        const tlsCert = new crypto.X509Certificate(readFile(user.tls_cert_file, `tls_cert_file of ${user.name}`));
        tlsClientCertificateHash = crypto.createHash('sha256').update(tlsCert.raw).digest();
    }
    const identity = { mspId: user.org, credentials: readFile(user.cert_file, `cert_file of ${user.name}`) };
    const privateKey = crypto.createPrivateKey(readFile(user.key_file, `key_file of ${user.name}`));
    const gateway = connect({
        client,
        identity,
        signer: signers.newPrivateKeySigner(privateKey),
        tlsClientCertificateHash,
        evaluateOptions: deadline(10_000),
        endorseOptions: deadline(30_000),
        submitOptions: deadline(30_000),
        commitStatusOptions: deadline(60_000),
        // Event streams get a deadline too, so that a peer that never answers fails the test
        // instead of hanging it.
        chaincodeEventsOptions: deadline(60_000),
        blockEventsOptions: deadline(60_000),
        filteredBlockEventsOptions: deadline(60_000),
        blockAndPrivateDataEventsOptions: deadline(60_000),
    });
    ctx.closeables.push(gateway);
    return gateway;
}

function orgClient(mspId, userName) {
    const peerNode = findPeer(mspId);
    const user = findUser(userName, mspId);
    const gateway = newGateway(newGrpcClient(peerNode, user), user);
    const network = gateway.getNetwork(CHANNEL);
    return { gateway, network, contract: network.getContract(CC_OR), peerNode, user };
}

/** Resolves with `promise`, or rejects after `ms` with `message`. */
async function within(ms, message, promise) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${message} (no answer within ${ms / 1000} s)`)), ms);
    });
    try {
        return await Promise.race([promise, timeout]);
    } finally {
        clearTimeout(timer);
    }
}

/** The first item of a CloseableAsyncIterable; closes it. */
async function first(iterable, what) {
    try {
        const next = await within(EVENT_READ_TIMEOUT_MS, `waiting for ${what}`, iterable[Symbol.asyncIterator]().next());
        assert.equal(next.done, false, `${what}: the stream ended without an item`);
        return next.value;
    } finally {
        iterable.close();
    }
}

/** Runs `fn`, which must reject; returns the error after checking its class. */
async function rejection(fn, errorClass, what) {
    let result;
    try {
        result = await fn();
    } catch (err) {
        assert.ok(
            err instanceof errorClass,
            `${what}: expected ${errorClass.name}, got ${err?.constructor?.name}: ${err?.message}`,
        );
        return err;
    }
    const shown = result instanceof Uint8Array ? JSON.stringify(utf8.decode(result)) : JSON.stringify(result, bigintJson);
    assert.fail(`${what}: expected ${errorClass.name}, but it succeeded with ${shown}`);
}

function describeDetails(err) {
    return JSON.stringify(err.details);
}

function txIdOf(envelopeBytes) {
    const envelope = common.Envelope.deserializeBinary(envelopeBytes);
    const payload = common.Payload.deserializeBinary(envelope.getPayload_asU8());
    const channelHeader = common.ChannelHeader.deserializeBinary(payload.getHeader().getChannelHeader_asU8());
    return channelHeader.getTxId();
}

/** Submits `fn(args)` on the kv chaincode asynchronously and waits for a VALID commit. */
async function submitValid(contract, fn, args) {
    const submitted = await contract.submitAsync(fn, { arguments: args });
    const status = await submitted.getStatus();
    assert.equal(status.code, StatusCode.VALID, `${fn}(${args.join(', ')}) should commit VALID, got code ${status.code}`);
    assert.equal(status.successful, true);
    assert.equal(status.transactionId, submitted.getTransactionId());
    return status;
}

/** A fresh random value for private data, so a test can search blocks for it. */
function secretValue(name) {
    return `${name}-secret-${crypto.randomBytes(12).toString('hex')}`;
}

function sha256(data) {
    return crypto.createHash('sha256').update(data).digest();
}

/**
 * Runs `attempt` until it resolves, retrying a chaincode error (GatewayError UNKNOWN) or a
 * failed assertion for up to PEER_CATCH_UP_MS: blocks reach each peer independently.
 */
async function caughtUp(attempt) {
    const until = Date.now() + PEER_CATCH_UP_MS;
    for (;;) {
        try {
            return await attempt();
        } catch (err) {
            const retriable =
                (err instanceof GatewayError && err.code === grpc.status.UNKNOWN) || err instanceof assert.AssertionError;
            if (!retriable || Date.now() > until) {
                throw err;
            }
            await new Promise((resolve) => setTimeout(resolve, 250));
        }
    }
}

/** Evaluates `fn(args)`, which must fail in the chaincode; returns the endorser's detail message. */
async function chaincodeError(contract, fn, args) {
    const what = `${fn}(${args.join(', ')})`;
    const err = await rejection(() => contract.evaluateTransaction(fn, ...args), GatewayError, what);
    assert.equal(err.code, grpc.status.UNKNOWN, `${what}: code ${err.code}: ${err.message}`);
    assert.equal(err.details.length, 1, `${what}: one detail: ${describeDetails(err)}`);
    return err.details[0].message;
}

/** The index of tx `txId` in `block`. */
function txIndexIn(block, txId) {
    const txIds = block.getData().getDataList_asU8().map(txIdOf);
    const index = txIds.indexOf(txId);
    assert.ok(index >= 0, `block ${block.getHeader().getNumber()} holds tx ${txId} (has ${JSON.stringify(txIds)})`);
    return index;
}

/**
 * The private writes of `collection` (of kv) in the `privateDataMap` entry of the tx at
 * `index`, decoded as `KVRWSet` writes; undefined if the map has no such collection.
 */
function privateWrites(blockAndPrivateData, index, collection) {
    const txPvt = blockAndPrivateData.getPrivateDataMapMap().get(index);
    const ns = txPvt?.getNsPvtRwsetList().find((n) => n.getNamespace() === CC_OR);
    const coll = ns?.getCollectionPvtRwsetList().find((c) => c.getCollectionName() === collection);
    if (!coll) {
        return undefined;
    }
    return ledger.rwset.kvrwset.KVRWSet.deserializeBinary(coll.getRwset_asU8()).getWritesList();
}

// ---------------------------------------------------------------------------------------------
// Network lifecycle

before(
    async () => {
        const bin = process.env.MEDFABRIC_BIN;
        if (!bin) {
            throw setupError(
                'MEDFABRIC_BIN is not set: set it to the absolute path of the medfabric CLI binary ' +
                    '(e.g. MEDFABRIC_BIN=$PWD/target/debug/medfabric npm test)',
            );
        }
        ctx.bin = path.resolve(bin);
        try {
            fs.accessSync(ctx.bin, fs.constants.X_OK);
        } catch {
            throw setupError(`MEDFABRIC_BIN=${bin}: no executable file there`);
        }
        const config = path.resolve(process.env.MEDFABRIC_NETWORK_CONFIG || path.join(REPO, 'network-config', 'dev.yaml'));
        if (!fs.existsSync(config)) {
            throw setupError(`network config ${config} does not exist (set MEDFABRIC_NETWORK_CONFIG)`);
        }

        ctx.tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'medfabric-node-'));
        ctx.dataDir = path.join(ctx.tmpDir, 'net');
        ctx.networkStarted = true;
        runMedfabric(['network', 'up', config, '--data', ctx.dataDir], NETWORK_UP_TIMEOUT_MS);
        ctx.networkUp = true;

        const statusText = runMedfabric(['network', 'status', '--data', ctx.dataDir, '--json'], STATUS_TIMEOUT_MS);
        try {
            ctx.status = JSON.parse(statusText);
        } catch (err) {
            throw setupError(`network status --json printed no valid JSON (${err.message}):\n${statusText}`);
        }
        if (!Array.isArray(ctx.status.nodes) || !Array.isArray(ctx.status.users)) {
            throw setupError(`network status --json has no nodes/users arrays:\n${statusText}`);
        }
        if (ctx.status.channel !== undefined && ctx.status.channel !== CHANNEL) {
            throw setupError(`the network's channel is ${ctx.status.channel}, the test expects ${CHANNEL}`);
        }

        hospital = orgClient(HOSPITAL, 'drhouse');
        lab = orgClient(LAB, 'tech1');
    },
    { timeout: NETWORK_UP_TIMEOUT_MS + 60_000 },
);

after(
    () => {
        for (const closeable of ctx.closeables.reverse()) {
            try {
                closeable.close();
            } catch (err) {
                process.stderr.write(`closing a client: ${err.message}\n`);
            }
        }
        let failure;
        if (ctx.networkStarted) {
            try {
                const out = runMedfabric(['network', 'down', '--data', ctx.dataDir], NETWORK_DOWN_TIMEOUT_MS);
                if (out) process.stderr.write(out);
            } catch (err) {
                if (ctx.networkUp) {
                    failure = err;
                } else {
                    // `network up` itself failed; that is the error already reported.
                    process.stderr.write(`cleanup after a failed network up: ${err.message}\n`);
                }
            }
        }
        if (ctx.tmpDir) {
            if (process.env.MEDFABRIC_KEEP_DATA) {
                process.stderr.write(`MEDFABRIC_KEEP_DATA is set: keeping ${ctx.tmpDir} (node logs are under net/)\n`);
            } else {
                fs.rmSync(ctx.tmpDir, { recursive: true, force: true });
            }
        }
        if (failure) throw failure;
    },
    { timeout: NETWORK_DOWN_TIMEOUT_MS + 30_000 },
);

// ---------------------------------------------------------------------------------------------
// Tests

test('evaluate returns what a submitted put wrote (mutual TLS)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const k = key('eval');
    await hospital.contract.submitTransaction('put', k, 'value-1');
    const result = await hospital.contract.evaluateTransaction('get', k);
    assert.equal(utf8.decode(result), 'value-1', `get(${k}) after put`);
});

test('evaluate over server-only TLS (no client certificate)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const k = key('tls');
    await hospital.contract.submitTransaction('put', k, 'server-tls');
    const user = hospital.user;
    const client = newGrpcClient(hospital.peerNode, user, { serverOnlyTls: true });
    const gateway = newGateway(client, user, { mutualTls: false });
    const contract = gateway.getNetwork(CHANNEL).getContract(CC_OR);
    const result = await contract.evaluateTransaction('get', k);
    assert.equal(utf8.decode(result), 'server-tls', `get(${k}) through a server-only TLS connection`);
});

test('submit: commit status VALID with a block number, and result bytes', { timeout: TEST_TIMEOUT_MS }, async () => {
    const k = key('submit');
    const submitted = await hospital.contract.submitAsync('put', { arguments: [k, 'v'] });
    assert.equal(typeof submitted.getTransactionId(), 'string');
    assert.ok(submitted.getTransactionId().length > 0, 'a transaction id');
    const status = await submitted.getStatus();
    assert.equal(status.code, StatusCode.VALID, `put commit status code (${JSON.stringify(status, bigintJson)})`);
    assert.equal(status.code, 0);
    assert.equal(status.successful, true);
    assert.equal(status.transactionId, submitted.getTransactionId());
    assert.equal(typeof status.blockNumber, 'bigint');
    assert.ok(status.blockNumber > 0n, `block number ${status.blockNumber} should be after the genesis block`);

    const ctr = key('submit-ctr');
    const one = await hospital.contract.submitTransaction('inc', ctr);
    assert.equal(utf8.decode(one), '1', `first inc(${ctr}) returns the new value`);
    const two = await hospital.contract.submitTransaction('inc', ctr);
    assert.equal(utf8.decode(two), '2', `second inc(${ctr}) returns the new value`);
    assert.equal(utf8.decode(await hospital.contract.evaluateTransaction('get', ctr)), '2');
});

test('MVCC: two incs endorsed before either commits, second is MVCC_READ_CONFLICT', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await t.test('second submitted after the first committed (later block)', async () => {
        const ctr = key('mvcc-a');
        const tx1 = await hospital.contract.newProposal('inc', { arguments: [ctr] }).endorse();
        const tx2 = await hospital.contract.newProposal('inc', { arguments: [ctr] }).endorse();
        assert.equal(utf8.decode(tx1.getResult()), '1', 'endorsement result of the first inc');
        assert.equal(utf8.decode(tx2.getResult()), '1', 'endorsement result of the second inc (same read)');
        assert.notEqual(tx1.getTransactionId(), tx2.getTransactionId());

        const commit1 = await tx1.submit();
        const status1 = await commit1.getStatus();
        assert.equal(status1.code, StatusCode.VALID, 'first inc commits VALID');
        assert.equal(status1.successful, true);

        const commit2 = await tx2.submit();
        const status2 = await commit2.getStatus();
        assert.equal(status2.code, StatusCode.MVCC_READ_CONFLICT, `second inc: code ${status2.code}, expected 11 MVCC_READ_CONFLICT`);
        assert.equal(status2.code, 11);
        assert.equal(status2.successful, false);
        assert.equal(status2.transactionId, tx2.getTransactionId());
        assert.ok(status2.blockNumber > status1.blockNumber, `an invalid tx still has a block (${status2.blockNumber} > ${status1.blockNumber})`);

        const again = await commit2.getStatus();
        assert.equal(again.code, StatusCode.MVCC_READ_CONFLICT, 'asking CommitStatus again gives the same code');
        assert.equal(again.blockNumber, status2.blockNumber, 'asking CommitStatus again gives the same block');
        assert.equal(utf8.decode(await hospital.contract.evaluateTransaction('get', ctr)), '1', 'the invalid inc changed nothing');
    });

    await t.test('both submitted before asking either status: one VALID, one MVCC_READ_CONFLICT', async () => {
        const ctr = key('mvcc-b');
        const tx1 = await hospital.contract.newProposal('inc', { arguments: [ctr] }).endorse();
        const tx2 = await hospital.contract.newProposal('inc', { arguments: [ctr] }).endorse();
        const commit1 = await tx1.submit();
        const commit2 = await tx2.submit();
        const statuses = [await commit1.getStatus(), await commit2.getStatus()];
        // Usually the first submitted wins, but with several orderers the order is not promised.
        const codes = statuses.map((s) => s.code).sort((a, b) => a - b);
        assert.deepEqual(codes, [StatusCode.VALID, StatusCode.MVCC_READ_CONFLICT], `codes of the two incs: ${codes}`);
        const loser = statuses.find((s) => s.code === StatusCode.MVCC_READ_CONFLICT);
        assert.equal(loser.successful, false);
        assert.ok(loser.blockNumber > 0n, 'the invalid tx has a block number');
        assert.equal(utf8.decode(await hospital.contract.evaluateTransaction('get', ctr)), '1', 'only one inc took effect');
    });
});

test('AND policy: gateway collects both orgs, Lab peer sees the write; one org only fails', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const hospitalAnd = hospital.network.getContract(CC_AND);
    const labAnd = lab.network.getContract(CC_AND);

    await t.test('put through the Hospital gateway is VALID and visible on the Lab peer', async () => {
        const k = key('and');
        await submitValid(hospitalAnd, 'put', [k, 'both-orgs']);

        // Blocks reach each peer independently: give the Lab peer a moment.
        const until = Date.now() + PEER_CATCH_UP_MS;
        let value;
        for (;;) {
            try {
                value = utf8.decode(await labAnd.evaluateTransaction('get', k));
                break;
            } catch (err) {
                if (!(err instanceof GatewayError) || err.code !== grpc.status.UNKNOWN || Date.now() > until) {
                    throw err;
                }
                await new Promise((resolve) => setTimeout(resolve, 250));
            }
        }
        assert.equal(value, 'both-orgs', `tech1 (LabMSP) reads ${k} on the Lab peer`);
    });

    await t.test('endorsingOrganizations [HospitalMSP] only: ENDORSEMENT_POLICY_FAILURE (10)', async () => {
        const k = key('and-one-org');
        const tx = await hospitalAnd
            .newProposal('put', { arguments: [k, 'one-org'], endorsingOrganizations: [HOSPITAL] })
            .endorse();
        const commit = await tx.submit();
        const status = await commit.getStatus();
        assert.equal(status.code, StatusCode.ENDORSEMENT_POLICY_FAILURE, `code ${status.code}, expected 10 ENDORSEMENT_POLICY_FAILURE`);
        assert.equal(status.code, 10);
        assert.equal(status.successful, false);
        assert.ok(status.blockNumber > 0n, 'an invalid tx still has a block number');

        // Through contract.submit the same failure is a client-side CommitError.
        const err = await rejection(
            () => hospitalAnd.submit('put', { arguments: [k, 'one-org-again'], endorsingOrganizations: [HOSPITAL] }),
            CommitError,
            'contract.submit with one org of an AND policy',
        );
        assert.equal(err.code, StatusCode.ENDORSEMENT_POLICY_FAILURE, `CommitError code ${err.code}`);
        assert.match(err.message, /failed to commit with status code 10 \(ENDORSEMENT_POLICY_FAILURE\)/);
        assert.equal(typeof err.transactionId, 'string');

        const absent = await rejection(() => hospitalAnd.evaluateTransaction('get', k), GatewayError, `get(${k})`);
        assert.equal(absent.code, grpc.status.UNKNOWN, 'invalid transactions write nothing');
    });
});

test('chaincode events: replay from a block, and resume from a checkpoint', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const name1 = key('evt1');
    const payload1 = `payload-1-${RUN}`;
    const submitted1 = await hospital.contract.submitAsync('event', { arguments: [name1, payload1] });
    const status1 = await submitted1.getStatus();
    assert.equal(status1.code, StatusCode.VALID, 'event tx commits VALID');

    let event1;
    await t.test('getChaincodeEvents(kv, {startBlock}) replays the event', async () => {
        const events = await hospital.network.getChaincodeEvents(CC_OR, { startBlock: status1.blockNumber });
        event1 = await first(events, 'the first chaincode event');
        assert.equal(event1.chaincodeName, CC_OR);
        assert.equal(event1.eventName, name1);
        assert.equal(utf8.decode(event1.payload), payload1);
        assert.ok(event1.payload instanceof Uint8Array);
        assert.equal(event1.transactionId, submitted1.getTransactionId());
        assert.equal(event1.blockNumber, status1.blockNumber);
    });

    await t.test('a checkpoint after the first event resumes at the next one', async () => {
        assert.ok(event1, 'needs the event of the previous subtest');
        const name2 = key('evt2');
        const payload2 = `payload-2-${RUN}`;
        const submitted2 = await hospital.contract.submitAsync('event', { arguments: [name2, payload2] });
        const status2 = await submitted2.getStatus();
        assert.equal(status2.code, StatusCode.VALID);

        const checkpointer = checkpointers.inMemory();
        await checkpointer.checkpointChaincodeEvent(event1);
        assert.equal(checkpointer.getBlockNumber(), event1.blockNumber);
        assert.equal(checkpointer.getTransactionId(), event1.transactionId);

        const events = await hospital.network.getChaincodeEvents(CC_OR, { checkpoint: checkpointer });
        const event2 = await first(events, 'the chaincode event after the checkpoint');
        assert.equal(event2.eventName, name2, 'the event after the checkpointed one');
        assert.equal(utf8.decode(event2.payload), payload2);
        assert.equal(event2.transactionId, submitted2.getTransactionId());
        assert.equal(event2.blockNumber, status2.blockNumber);
    });
});

test('block events via Deliver: full, filtered, and with private data', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const k = key('block');
    const submitted = await hospital.contract.submitAsync('put', { arguments: [k, 'in-a-block'] });
    const status = await submitted.getStatus();
    assert.equal(status.code, StatusCode.VALID);
    const txId = submitted.getTransactionId();

    function checkBlock(block, what) {
        assert.equal(BigInt(block.getHeader().getNumber()), status.blockNumber, `${what} number`);
        const data = block.getData().getDataList_asU8();
        const txIds = data.map(txIdOf);
        const index = txIds.indexOf(txId);
        assert.ok(index >= 0, `${what} holds tx ${txId} (has ${JSON.stringify(txIds)})`);
        const metadata = block.getMetadata().getMetadataList_asU8();
        assert.equal(metadata.length, 5, `${what} carries 5 metadata entries`);
        const filter = metadata[common.BlockMetadataIndex.TRANSACTIONS_FILTER];
        assert.equal(filter.length, data.length, `${what}: TRANSACTIONS_FILTER has one code per tx`);
        assert.equal(filter[index], peer.TxValidationCode.VALID, `${what}: TRANSACTIONS_FILTER code of the tx`);
    }

    await t.test('getBlockEvents({startBlock})', async () => {
        const blocks = await hospital.network.getBlockEvents({ startBlock: status.blockNumber });
        checkBlock(await first(blocks, 'the first block'), 'the block');
    });

    await t.test('getFilteredBlockEvents({startBlock})', async () => {
        const blocks = await hospital.network.getFilteredBlockEvents({ startBlock: status.blockNumber });
        const filtered = await first(blocks, 'the first filtered block');
        assert.equal(BigInt(filtered.getNumber()), status.blockNumber, 'filtered block number');
        assert.equal(filtered.getChannelId(), CHANNEL);
        const txs = filtered.getFilteredTransactionsList();
        const tx = txs.find((f) => f.getTxid() === txId);
        assert.ok(tx, `filtered block holds tx ${txId} (has ${JSON.stringify(txs.map((f) => f.getTxid()))})`);
        assert.equal(tx.getTxValidationCode(), peer.TxValidationCode.VALID, 'filtered tx validation code');
        assert.equal(tx.getType(), common.HeaderType.ENDORSER_TRANSACTION, 'filtered tx type');
    });

    await t.test('getBlockAndPrivateDataEvents({startBlock})', async () => {
        const blocks = await hospital.network.getBlockAndPrivateDataEvents({ startBlock: status.blockNumber });
        const withPrivateData = await first(blocks, 'the first block and private data');
        checkBlock(withPrivateData.getBlock(), 'the block with private data');
        assert.equal(withPrivateData.getPrivateDataMapMap().getLength(), 0, 'no private data without collections');
    });
});

test('private data: putpvt via the transient map, read by both orgs; blocks carry only hashes', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const k = key('pvt');
    const secret = secretValue('pvt');
    const tx = await hospital.contract
        .newProposal('putpvt', { arguments: [SHARED, k], transientData: { value: secret } })
        .endorse();
    const commit = await tx.submit();
    const status = await commit.getStatus();
    assert.equal(status.code, StatusCode.VALID, `putpvt(${SHARED}, ${k}) commit status (${JSON.stringify(status, bigintJson)})`);
    assert.equal(status.successful, true);
    const txId = tx.getTransactionId();

    await t.test('getpvt and hashpvt on the Hospital peer (drhouse) and the Lab peer (tech1)', async () => {
        const hash = sha256(secret).toString('hex');
        assert.equal(utf8.decode(await hospital.contract.evaluateTransaction('getpvt', SHARED, k)), secret, 'getpvt on Hospital');
        assert.equal(utf8.decode(await hospital.contract.evaluateTransaction('hashpvt', SHARED, k)), hash, 'hashpvt on Hospital');
        await caughtUp(async () => {
            assert.equal(utf8.decode(await lab.contract.evaluateTransaction('getpvt', SHARED, k)), secret, 'getpvt on Lab');
        });
        assert.equal(utf8.decode(await lab.contract.evaluateTransaction('hashpvt', SHARED, k)), hash, 'hashpvt on Lab');
    });

    await t.test('getBlockEvents: the block has the hashes of key and value, not the value', async () => {
        const block = await first(await hospital.network.getBlockEvents({ startBlock: status.blockNumber }), 'the block');
        assert.equal(BigInt(block.getHeader().getNumber()), status.blockNumber, 'block number');
        txIndexIn(block, txId);
        const bytes = Buffer.from(block.serializeBinary());
        assert.ok(!bytes.includes(Buffer.from(secret)), 'the private value is nowhere in the block');
        assert.ok(bytes.includes(sha256(secret)), 'the block holds the SHA-256 of the private value');
        assert.ok(bytes.includes(sha256(k)), 'the block holds the SHA-256 of the private key');
    });

    await t.test('getBlockAndPrivateDataEvents: members get the value for the tx', async () => {
        for (const [who, client] of [['drhouse on the Hospital peer', hospital], ['tech1 on the Lab peer', lab]]) {
            const blocks = await client.network.getBlockAndPrivateDataEvents({ startBlock: status.blockNumber });
            const withPrivateData = await first(blocks, `the block and private data (${who})`);
            const block = withPrivateData.getBlock();
            assert.equal(BigInt(block.getHeader().getNumber()), status.blockNumber, `${who}: block number`);
            const index = txIndexIn(block, txId);
            assert.ok(!Buffer.from(block.serializeBinary()).includes(Buffer.from(secret)), `${who}: the value is not in the block itself`);
            const map = withPrivateData.getPrivateDataMapMap();
            assert.ok(map.has(index), `${who}: privateDataMap has tx index ${index} (keys ${JSON.stringify([...map.keys()])})`);
            assert.ok(Buffer.from(map.get(index).serializeBinary()).includes(Buffer.from(secret)), `${who}: the entry holds the value`);
            const writes = privateWrites(withPrivateData, index, SHARED);
            assert.ok(writes, `${who}: the entry has collection ${SHARED} of ${CC_OR}`);
            assert.deepEqual(
                writes.map((w) => [w.getKey(), w.getIsDelete(), utf8.decode(w.getValue_asU8())]),
                [[k, false, secret]],
                `${who}: KVRWSet writes of ${SHARED}`,
            );
        }
    });
});

test('private data: member-only collections refuse other orgs', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await t.test('Hospital client writing the Lab-only collection: EndorseError, nothing committed', async () => {
        const k = key('pvt-denied');
        const err = await rejection(
            () =>
                hospital.contract.submit('putpvt', {
                    arguments: [LAB_ONLY, k],
                    transientData: { value: secretValue('denied') },
                    endorsingOrganizations: [HOSPITAL],
                }),
            EndorseError,
            `putpvt(${LAB_ONLY}, ${k}) by drhouse`,
        );
        assert.equal(err.code, grpc.status.ABORTED, `code ${err.code}: ${err.message}`);
        assert.equal(err.details.length, 1, `one detail: ${describeDetails(err)}`);
        assert.equal(err.details[0].mspId, HOSPITAL);
        assert.ok(err.details[0].message.startsWith('chaincode response 500, '), `detail: ${err.details[0].message}`);
        assert.ok(err.details[0].message.includes('does not have write access permission'), `detail: ${err.details[0].message}`);
        assert.ok(err.details[0].message.includes(LAB_ONLY), `detail names the collection: ${err.details[0].message}`);

        const absent = await chaincodeError(lab.contract, 'getpvt', [LAB_ONLY, k]);
        assert.ok(absent.includes(`not found: ${k}`), `tech1 reads nothing on the Lab peer: ${absent}`);
    });

    // tech1 writes the Lab-only collection through the Lab peer: allowed, the Lab is its member.
    const k = key('pvt-lab');
    const secret = secretValue('lab');
    const tx = await lab.contract
        .newProposal('putpvt', { arguments: [LAB_ONLY, k], transientData: { value: secret } })
        .endorse();
    const status = await (await tx.submit()).getStatus();
    assert.equal(status.code, StatusCode.VALID, `tech1 putpvt(${LAB_ONLY}, ${k}) commits VALID`);
    assert.equal(utf8.decode(await lab.contract.evaluateTransaction('getpvt', LAB_ONLY, k)), secret, 'tech1 reads it back');

    await t.test('Hospital client reading the Lab-only collection: chaincode error', async () => {
        const message = await chaincodeError(hospital.contract, 'getpvt', [LAB_ONLY, k]);
        assert.ok(message.includes('does not have read access permission'), `detail: ${message}`);
    });

    await t.test('Lab peer Deliver gives the collection to tech1, not to drhouse', async () => {
        const labBlocks = await lab.network.getBlockAndPrivateDataEvents({ startBlock: status.blockNumber });
        const forLab = await first(labBlocks, 'the block and private data (tech1)');
        const index = txIndexIn(forLab.getBlock(), tx.getTransactionId());
        const writes = privateWrites(forLab, index, LAB_ONLY);
        assert.ok(writes, `tech1 gets collection ${LAB_ONLY} of tx index ${index}`);
        assert.deepEqual(writes.map((w) => [w.getKey(), utf8.decode(w.getValue_asU8())]), [[k, secret]]);

        // drhouse (HospitalMSP) asks the Lab peer, which holds the data, over server-only TLS.
        const client = newGrpcClient(lab.peerNode, hospital.user, { serverOnlyTls: true });
        const network = newGateway(client, hospital.user, { mutualTls: false }).getNetwork(CHANNEL);
        const forHospital = await first(
            await network.getBlockAndPrivateDataEvents({ startBlock: status.blockNumber }),
            'the block and private data (drhouse on the Lab peer)',
        );
        assert.equal(BigInt(forHospital.getBlock().getHeader().getNumber()), status.blockNumber);
        assert.equal(privateWrites(forHospital, index, LAB_ONLY), undefined, `drhouse gets no ${LAB_ONLY}`);
        const entry = forHospital.getPrivateDataMapMap().get(index);
        const entryBytes = entry ? Buffer.from(entry.serializeBinary()) : Buffer.alloc(0);
        assert.ok(!entryBytes.includes(Buffer.from(secret)), 'drhouse gets no private value of the tx');
    });
});

test('private data MVCC: two incpvt endorsed before either commits, one is MVCC_READ_CONFLICT', { timeout: TEST_TIMEOUT_MS }, async () => {
    const ctr = key('pvt-mvcc');
    const tx1 = await hospital.contract.newProposal('incpvt', { arguments: [SHARED, ctr] }).endorse();
    const tx2 = await hospital.contract.newProposal('incpvt', { arguments: [SHARED, ctr] }).endorse();
    assert.equal(utf8.decode(tx1.getResult()), '1', 'endorsement result of the first incpvt');
    assert.equal(utf8.decode(tx2.getResult()), '1', 'endorsement result of the second incpvt (same read)');
    const commit1 = await tx1.submit();
    const commit2 = await tx2.submit();
    const statuses = [await commit1.getStatus(), await commit2.getStatus()];
    const codes = statuses.map((s) => s.code).sort((a, b) => a - b);
    assert.deepEqual(codes, [StatusCode.VALID, StatusCode.MVCC_READ_CONFLICT], `codes of the two incpvts: ${codes}`);
    const loser = statuses.find((s) => s.code === StatusCode.MVCC_READ_CONFLICT);
    assert.equal(loser.code, 11);
    assert.equal(loser.successful, false);
    assert.ok(loser.blockNumber > 0n, 'the invalid tx has a block number');
    assert.equal(utf8.decode(await hospital.contract.evaluateTransaction('getpvt', SHARED, ctr)), '1', 'only one incpvt took effect');
    assert.equal(utf8.decode(await hospital.contract.submitTransaction('incpvt', SHARED, ctr)), '2', 'a later incpvt reads 1');
});

test('private data purge: getpvt and hashpvt answer not found on both peers', { timeout: TEST_TIMEOUT_MS }, async () => {
    const k = key('pvt-purge');
    const secret = secretValue('purge');
    await hospital.contract.submit('putpvt', { arguments: [SHARED, k], transientData: { value: secret } });
    assert.equal(utf8.decode(await hospital.contract.evaluateTransaction('getpvt', SHARED, k)), secret, 'Hospital has the value');
    await caughtUp(async () => {
        assert.equal(utf8.decode(await lab.contract.evaluateTransaction('getpvt', SHARED, k)), secret, 'Lab has the value');
    });

    await submitValid(hospital.contract, 'purgepvt', [SHARED, k]);
    for (const fn of ['getpvt', 'hashpvt']) {
        const message = await chaincodeError(hospital.contract, fn, [SHARED, k]);
        assert.ok(message.includes(`not found: ${k}`), `${fn} on Hospital after purge: ${message}`);
    }
    for (const fn of ['getpvt', 'hashpvt']) {
        const message = await caughtUp(async () => {
            const m = await chaincodeError(lab.contract, fn, [SHARED, k]);
            assert.ok(m.includes(`not found: ${k}`), `${fn} on Lab after purge: ${m}`);
            return m;
        });
        assert.ok(message.includes('not found'));
    }
});

test('bad requests give the errors a Fabric client expects', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const hospitalAddress = hospital.peerNode.address;

    await t.test('evaluate get(absent): GatewayError UNKNOWN with one endorser detail', async () => {
        const absent = key('absent');
        const err = await rejection(() => hospital.contract.evaluateTransaction('get', absent), GatewayError, `get(${absent})`);
        assert.equal(err.code, grpc.status.UNKNOWN, `code ${err.code}: ${err.message}`);
        assert.equal(err.details.length, 1, `one detail: ${describeDetails(err)}`);
        assert.equal(err.details[0].mspId, HOSPITAL);
        assert.equal(err.details[0].address, hospitalAddress, 'detail address is the endorsing peer\'s address');
        assert.equal(err.details[0].message, `chaincode response 500, not found: ${absent}`);
        assert.ok(
            err.message.includes(`evaluate call to endorser returned error: chaincode response 500, not found: ${absent}`),
            `message: ${err.message}`,
        );
    });

    await t.test('submit create(existing): EndorseError ABORTED with the chaincode message', async () => {
        const k = key('exists');
        await hospital.contract.submitTransaction('put', k, 'first');
        const err = await rejection(() => hospital.contract.submitTransaction('create', k, 'second'), EndorseError, `create(${k})`);
        assert.equal(err.code, grpc.status.ABORTED, `code ${err.code}: ${err.message}`);
        assert.ok(
            err.message.includes('failed to endorse transaction, see attached details for more info'),
            `message: ${err.message}`,
        );
        assert.equal(err.details.length, 1, `one detail: ${describeDetails(err)}`);
        assert.equal(err.details[0].message, `chaincode response 500, key exists: ${k}`);
        assert.equal(err.details[0].mspId, HOSPITAL);
        assert.equal(err.details[0].address, hospitalAddress);
        assert.ok(err.transactionId, 'EndorseError carries the transaction id');
    });

    await t.test('evaluate an unknown function: UNKNOWN with a chaincode 500 detail', async () => {
        const err = await rejection(() => hospital.contract.evaluateTransaction('nosuchfunction', 'x'), GatewayError, 'nosuchfunction');
        assert.equal(err.code, grpc.status.UNKNOWN, `code ${err.code}: ${err.message}`);
        assert.equal(err.details.length, 1, `one detail: ${describeDetails(err)}`);
        assert.ok(err.details[0].message.startsWith('chaincode response 500, '), `detail: ${err.details[0].message}`);
    });

    await t.test('evaluate on an unknown chaincode: FAILED_PRECONDITION', async () => {
        const contract = hospital.network.getContract('nosuchcc');
        const err = await rejection(() => contract.evaluateTransaction('get', 'x'), GatewayError, 'evaluate on nosuchcc');
        assert.equal(err.code, grpc.status.FAILED_PRECONDITION, `code ${err.code}: ${err.message}`);
        assert.ok(
            err.message.includes(`no peers available to evaluate chaincode nosuchcc in channel ${CHANNEL}`),
            `message: ${err.message}`,
        );
        assert.equal(err.details.length, 0, `no details: ${describeDetails(err)}`);
    });

    await t.test('endorse on an unknown chaincode: FAILED_PRECONDITION', async () => {
        const contract = hospital.network.getContract('nosuchcc');
        const err = await rejection(() => contract.submitTransaction('put', 'x', 'y'), EndorseError, 'submit on nosuchcc');
        assert.equal(err.code, grpc.status.FAILED_PRECONDITION, `code ${err.code}: ${err.message}`);
        assert.ok(
            err.message.includes(
                'no combination of peers can be derived which satisfy the endorsement policy: ' +
                    `No metadata was found for chaincode nosuchcc in channel ${CHANNEL}`,
            ),
            `message: ${err.message}`,
        );
    });

    await t.test('evaluate on an unknown channel: UNAVAILABLE', async () => {
        const contract = hospital.gateway.getNetwork('nochannel').getContract(CC_OR);
        const err = await rejection(() => contract.evaluateTransaction('get', 'x'), GatewayError, 'evaluate on nochannel');
        assert.equal(err.code, grpc.status.UNAVAILABLE, `code ${err.code}: ${err.message}`);
        assert.ok(err.message.includes('failed to get config for channel [nochannel]'), `message: ${err.message}`);
        assert.equal(err.details.length, 0, `no details: ${describeDetails(err)}`);
    });

    await t.test('chaincode events on an unknown channel: PERMISSION_DENIED on the first read', async () => {
        const events = await hospital.gateway.getNetwork('nochannel').getChaincodeEvents(CC_OR);
        const err = await rejection(() => first(events, 'chaincode events on nochannel'), GatewayError, 'events on nochannel');
        assert.equal(err.code, grpc.status.PERMISSION_DENIED, `code ${err.code}: ${err.message}`);
        assert.ok(err.message.includes('Failed to get policy manager for channel [nochannel]'), `message: ${err.message}`);
    });
});

function bigintJson(_key, value) {
    return typeof value === 'bigint' ? value.toString() : value;
}
