// Acceptance test: the unmodified npm fabric-ca-client (2.2.x) against the medfabric CA
// (`medfabric-ca`, one per org, started by `medfabric network up`). The expected answers follow
// a real Fabric CA 1.5 server driven by the same client (see
// docs/fabric-ca.md). An identity enrolled at the Hospital CA then
// submits through the unmodified @hyperledger/fabric-gateway client.
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
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as grpc from '@grpc/grpc-js';
import { connect, signers, StatusCode } from '@hyperledger/fabric-gateway';

// fabric-ca-client and fabric-common are CommonJS packages.
const require = createRequire(import.meta.url);
const FabricCAServices = require('fabric-ca-client');
const { User } = require('fabric-common');
const jsrsasign = require('jsrsasign');

const CHANNEL = 'medchannel';
const CC_OR = 'kv'; // OR('HospitalMSP.peer', 'LabMSP.peer')
const HOSPITAL = 'HospitalMSP';
const LAB = 'LabMSP';
const AFFILIATIONS = { [HOSPITAL]: 'hospital', [LAB]: 'lab' };
const ATTRS_OID = '1.2.3.4.5.6.7.8.1'; // Fabric CA's attribute extension (JSON)
const AKI_OID = '2.5.29.35'; // authorityKeyIdentifier

const NETWORK_UP_TIMEOUT_MS = 180_000;
const NETWORK_DOWN_TIMEOUT_MS = 120_000;
const STATUS_TIMEOUT_MS = 30_000;
const TEST_TIMEOUT_MS = 120_000;

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
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
 * @typedef {object} OrgCa
 * @property {FabricCAServices} ca a client of the org's CA
 * @property {any} node the CA's entry in `network status --json`
 * @property {string} caName the CA name (`name` of its config)
 * @property {string} adminId the bootstrap admin's enrollment ID
 * @property {string} adminSecret the bootstrap admin's secret
 * @property {string} mspId
 * @property {string} affiliation
 * @property {User} admin the bootstrap admin, enrolled in before()
 */
/** @type {OrgCa} the Hospital CA */
let hospital;
/** @type {OrgCa} the Lab CA */
let lab;

// ---------------------------------------------------------------------------------------------
// Helpers

/** An error for setup problems, reported without a (useless) stack trace. */
function setupError(message) {
    const err = new Error(message);
    err.stack = `Error: ${message}`;
    return err;
}

/** A fresh enrollment ID. */
function newId(name) {
    return `${name}-${crypto.randomBytes(6).toString('hex')}`;
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

function findNode(role, mspId) {
    const node = ctx.status.nodes.find((n) => n.role === role && n.org === mspId);
    if (!node) {
        throw setupError(`network status --json lists no ${role} of ${mspId}`);
    }
    if (!node.address) {
        throw setupError(`network status --json: ${role} ${node.name} has no address`);
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
 * The top-level `key: value` scalars of the CA's YAML config, and those of its
 * `bootstrap:` block (as `bootstrap.id` etc.). Enough for the flat file
 * `network generate` writes; no YAML library needed.
 */
function readCaConfig(file, what) {
    const text = readFile(file, what).toString('utf8');
    const values = {};
    let block;
    for (const line of text.split(/\r?\n/)) {
        const m = /^(\s*)([A-Za-z_]+):\s*(.*?)\s*$/.exec(line);
        if (!m) continue;
        const [, indent, name, raw] = m;
        const value = raw.replace(/^(['"])(.*)\1$/, '$2');
        if (indent === '') {
            block = value === '' ? name : undefined;
            values[name] = value;
        } else if (block) {
            values[`${block}.${name}`] = value;
        }
    }
    return values;
}

/** The CA of `mspId` from `network status --json` and its config; enrolls its bootstrap admin. */
async function orgCa(mspId) {
    const node = findNode('ca', mspId);
    const config = readCaConfig(node.config_file, `config_file of ${node.name}`);
    const caName = config.name;
    const adminId = config['bootstrap.id'];
    const adminSecret = config['bootstrap.secret'];
    if (!caName || !adminId || !adminSecret) {
        throw setupError(`${node.config_file}: no name, bootstrap.id or bootstrap.secret`);
    }
    // Fabric CA in production: HTTPS, trusting the org's TLS CA from `network status`.
    if (!node.tls_ca_file) throw setupError(`network status gives no tls_ca_file for ${node.name}`);
    const tlsOptions = { trustedRoots: [readFile(node.tls_ca_file, `tls_ca_file of ${node.name}`).toString()], verify: true };
    const ca = new FabricCAServices(`https://${node.address}`, tlsOptions, caName);
    const enrollment = await ca.enroll({ enrollmentID: adminId, enrollmentSecret: adminSecret });
    const admin = userOf(adminId, adminSecret, mspId, enrollment);
    return { ca, node, caName, adminId, adminSecret, mspId, affiliation: AFFILIATIONS[mspId], admin };
}

/**
 * A fabric-common `User` from an enrollment, the way fabric-network 2.2 builds one from a
 * wallet identity: `User.createUser(name, secret, mspId, certificatePem, privateKeyPem)`.
 */
function userOf(id, secret, mspId, enrollment) {
    return User.createUser(id, secret, mspId, enrollment.certificate, enrollment.key.toBytes());
}

/** Registers `id` with the admin of `org`, enrolls it; returns {secret, enrollment, user}. */
async function registerAndEnroll(org, id, { attrs = [], maxEnrollments } = {}) {
    const secret = await org.ca.register(
        { enrollmentID: id, affiliation: org.affiliation, role: 'client', attrs, maxEnrollments },
        org.admin,
    );
    assert.equal(typeof secret, 'string', `register(${id}) returns the secret`);
    assert.ok(secret.length > 0, `register(${id}) returns a non-empty secret`);
    const enrollment = await org.ca.enroll({ enrollmentID: id, enrollmentSecret: secret });
    return { secret, enrollment, user: userOf(id, secret, org.mspId, enrollment) };
}

/** Runs `fn`, which must reject with a Fabric CA error; returns the error. */
async function caRejection(fn, what) {
    let result;
    try {
        result = await fn();
    } catch (err) {
        assert.ok(Array.isArray(err.errors), `${what}: expected a Fabric CA error response, got: ${err?.message}`);
        assert.equal(err.success, false, `${what}: success is false`);
        return err;
    }
    assert.fail(`${what}: expected a Fabric CA error, but it succeeded with ${JSON.stringify(result)?.slice(0, 500)}`);
}

/** Checks that a Fabric CA error carries exactly the one (code, message) given. */
function assertCaError(err, code, message, what) {
    assert.deepEqual(
        err.errors.map((e) => ({ code: e.code, message: e.message })),
        [{ code, message }],
        `${what}: errors of ${err.message}`,
    );
}

// --- minimal DER reading: enough for certificate extensions and a CRL -------------------------

/** One DER TLV at `offset`: {tag, start (of the contents), end, contents}. */
function derAt(buf, offset = 0) {
    const tag = buf[offset];
    let len = buf[offset + 1];
    let start = offset + 2;
    if (len & 0x80) {
        const n = len & 0x7f;
        assert.ok(n >= 1 && n <= 4, `DER length of ${n} bytes at ${offset}`);
        len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + buf[start + i];
        start += n;
    }
    const end = start + len;
    assert.ok(end <= buf.length, `DER element at ${offset} runs past the end`);
    return { tag, start, end, contents: buf.subarray(start, end), der: buf.subarray(offset, end) };
}

/** The children of a constructed DER element. */
function derChildren(el) {
    const buf = el.contents;
    const children = [];
    for (let offset = 0; offset < buf.length; ) {
        const child = derAt(buf, offset);
        children.push(child);
        offset = child.end;
    }
    return children;
}

function oidString(bytes) {
    const parts = [Math.floor(bytes[0] / 40), bytes[0] % 40];
    let value = 0;
    for (const b of bytes.subarray(1)) {
        value = value * 128 + (b & 0x7f);
        if (!(b & 0x80)) {
            parts.push(value);
            value = 0;
        }
    }
    return parts.join('.');
}

/** The extensions of a certificate: Map(oid -> extnValue contents). */
function extensionsOf(certificate) {
    const tbs = derChildren(derAt(new crypto.X509Certificate(certificate).raw))[0];
    const explicit = derChildren(tbs).find((c) => c.tag === 0xa3);
    const extensions = new Map();
    if (!explicit) return extensions;
    for (const ext of derChildren(derChildren(explicit)[0])) {
        const fields = derChildren(ext);
        extensions.set(oidString(fields[0].contents), Buffer.from(fields[fields.length - 1].contents));
    }
    return extensions;
}

/** The `attrs` of a certificate's Fabric CA attribute extension, or undefined. */
function certAttrs(certificate) {
    const value = extensionsOf(certificate).get(ATTRS_OID);
    if (value === undefined) return undefined;
    const parsed = JSON.parse(value.toString('utf8'));
    assert.equal(typeof parsed.attrs, 'object', `attribute extension is {"attrs":{...}}: ${value}`);
    return parsed.attrs;
}

/** The authority key identifier of a certificate, lowercase hex as in the certificate. */
function akiOf(certificate) {
    const value = extensionsOf(certificate).get(AKI_OID);
    assert.ok(value, 'the certificate has an authority key identifier');
    const keyId = derChildren(derAt(value)).find((c) => c.tag === 0x80);
    assert.ok(keyId, 'the authority key identifier has a keyIdentifier');
    return Buffer.from(keyId.contents).toString('hex');
}

/**
 * Lowercase hex without leading zeros or colons: how Fabric CA stores, reports and compares
 * serials and AKIs (its certificate DB trims the AKI's leading zeros too).
 */
function normHex(hex) {
    return BigInt(`0x${hex.replace(/:/g, '')}`).toString(16);
}

function serialOf(certificate) {
    return normHex(new crypto.X509Certificate(certificate).serialNumber);
}

/**
 * A CRL (PEM): checks its signature against `caCert` and that its issuer is the CA's subject;
 * returns the revoked serials (normalised hex).
 */
function parseCrl(pem, caCert) {
    const m = /-----BEGIN X509 CRL-----([\s\S]+?)-----END X509 CRL-----/.exec(pem);
    assert.ok(m, `a PEM X509 CRL: ${pem.slice(0, 80)}`);
    const der = Buffer.from(m[1].replace(/\s+/g, ''), 'base64');
    const [tbs, , signature] = derChildren(derAt(der));
    assert.equal(signature.tag, 0x03, 'CRL signature is a BIT STRING');
    const valid = crypto.verify('sha256', tbs.der, caCert.publicKey, signature.contents.subarray(1));
    assert.ok(valid, 'the CRL signature verifies with the CA certificate');

    const fields = derChildren(tbs);
    let i = 0;
    if (fields[i].tag === 0x02) i++; // version
    i++; // signature algorithm
    const issuer = fields[i++];
    const caSubject = derChildren(derChildren(derAt(caCert.raw))[0]).filter((c) => c.tag === 0x30)[3];
    assert.ok(Buffer.from(issuer.der).equals(Buffer.from(caSubject.der)), 'the CRL issuer is the CA subject');
    i++; // thisUpdate
    if (fields[i] && (fields[i].tag === 0x17 || fields[i].tag === 0x18)) i++; // nextUpdate
    const serials = [];
    if (fields[i] && fields[i].tag === 0x30) {
        for (const entry of derChildren(fields[i])) {
            const serial = derChildren(entry)[0];
            assert.equal(serial.tag, 0x02, 'a CRL entry starts with the serial INTEGER');
            serials.push(normHex(Buffer.from(serial.contents).toString('hex')));
        }
    }
    return serials;
}

/** The subject of a certificate as {CN, OU: [...]}. */
function subjectOf(certificate) {
    const subject = new crypto.X509Certificate(certificate).toLegacyObject().subject;
    const ou = subject.OU === undefined ? [] : [subject.OU].flat();
    return { CN: subject.CN, OU: ou, keys: Object.keys(subject).sort() };
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

        ctx.tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'medfabric-node-ca-'));
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

        hospital = await orgCa(HOSPITAL);
        lab = await orgCa(LAB);
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

test('bootstrap admin: enroll, certificate subject, cainfo', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    for (const org of [hospital, lab]) {
        await t.test(`${org.caName}: enroll admin`, async () => {
            const enrollment = await org.ca.enroll({ enrollmentID: org.adminId, enrollmentSecret: org.adminSecret });
            assert.ok(enrollment.key, 'the enrollment has the generated private key');
            assert.ok(enrollment.key.isPrivate(), 'enrollment.key is a private key');
            assert.match(enrollment.certificate, /^-----BEGIN CERTIFICATE-----\n/, 'certificate is PEM');
            assert.match(enrollment.rootCertificate, /-----BEGIN CERTIFICATE-----\n/, 'rootCertificate is PEM');

            const cert = new crypto.X509Certificate(enrollment.certificate);
            const root = new crypto.X509Certificate(enrollment.rootCertificate);
            assert.deepEqual(subjectOf(enrollment.certificate), { CN: 'admin', OU: ['client'], keys: ['CN', 'OU'] }, 'subject OU=client, CN=admin');
            assert.ok(cert.checkIssued(root) && cert.verify(root.publicKey), 'the certificate is issued and signed by the CA');
            assert.equal(certAttrs(enrollment.certificate), undefined, 'the bootstrap admin has no attribute extension');
            const publicKey = crypto.createPublicKey(enrollment.key.getPublicKey().toBytes());
            assert.ok(
                cert.publicKey.export({ format: 'der', type: 'spki' }).equals(publicKey.export({ format: 'der', type: 'spki' })),
                'the certificate holds the public key of enrollment.key',
            );

            // The CA's root is the org's MSP root: the same certificate as the users' cacerts.
            const mspUser = ctx.status.users.find((u) => u.org === org.mspId && u.msp_dir);
            assert.ok(mspUser, `network status --json lists a user of ${org.mspId}`);
            const cacertsDir = path.join(mspUser.msp_dir, 'cacerts');
            const mspRoots = fs.readdirSync(cacertsDir).map((f) => new crypto.X509Certificate(fs.readFileSync(path.join(cacertsDir, f))));
            assert.ok(
                mspRoots.some((r) => r.raw.equals(root.raw)),
                `the CA chain is the ${org.mspId} MSP root (${cacertsDir})`,
            );
        });

        await t.test(`${org.caName}: getCaInfo`, async () => {
            const info = await org.ca.getCaInfo(org.admin);
            assert.equal(info.caName, org.caName, 'caName');
            assert.equal(typeof info.version, 'string', 'version');
            assert.ok(info.version.length > 0, 'a version');
            const chain = new crypto.X509Certificate(info.caChain);
            const admin = new crypto.X509Certificate(org.admin.getIdentity()._certificate);
            assert.ok(admin.checkIssued(chain), 'caChain is the issuer of the enrolled admin');
            assert.equal(typeof info.issuerPublicKey, 'string');
            assert.equal(typeof info.issuerRevocationPublicKey, 'string');
        });
    }
});

test('register a patient with attributes, enroll, reenroll', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const id = newId('patient');
    const { secret, enrollment, user } = await registerAndEnroll(hospital, id, {
        attrs: [{ name: 'role', value: 'patient', ecert: true }],
    });

    await t.test('the ECert: CN, OU client and hospital, attributes', () => {
        const subject = subjectOf(enrollment.certificate);
        assert.equal(subject.CN, id, 'CN is the enrollment ID');
        assert.deepEqual([...subject.OU].sort(), ['client', 'hospital'], 'OU=client and OU=hospital');
        assert.deepEqual(subject.keys, ['CN', 'OU'], 'the subject holds only OU and CN');
        const cert = new crypto.X509Certificate(enrollment.certificate);
        assert.ok(cert.checkIssued(new crypto.X509Certificate(enrollment.rootCertificate)), 'issued by the CA');
        assert.deepEqual(
            certAttrs(enrollment.certificate),
            { 'hf.Affiliation': 'hospital', 'hf.EnrollmentID': id, 'hf.Type': 'client', role: 'patient' },
            'attribute extension',
        );
    });

    await t.test('the default maxEnrollments of the client (1): a second enroll is refused', async () => {
        const err = await caRejection(() => hospital.ca.enroll({ enrollmentID: id, enrollmentSecret: secret }), `second enroll of ${id}`);
        assertCaError(err, 20, 'Authentication failure', `second enroll of ${id}`);
    });

    await t.test('reenroll: a new certificate, new key and serial, same subject and attributes', async () => {
        const renewed = await hospital.ca.reenroll(user);
        assert.ok(renewed.key?.isPrivate(), 'reenroll returns a new private key');
        assert.notEqual(renewed.key.getSKI(), enrollment.key.getSKI(), 'a different key');
        assert.match(renewed.certificate, /^-----BEGIN CERTIFICATE-----\n/, 'certificate is PEM');
        assert.notEqual(serialOf(renewed.certificate), serialOf(enrollment.certificate), 'a different serial');
        assert.deepEqual(subjectOf(renewed.certificate), subjectOf(enrollment.certificate), 'the same subject');
        assert.deepEqual(certAttrs(renewed.certificate), certAttrs(enrollment.certificate), 'the same attributes');
        const root = new crypto.X509Certificate(renewed.rootCertificate);
        assert.ok(new crypto.X509Certificate(renewed.certificate).checkIssued(root), 'issued by the CA');
        const publicKey = crypto.createPublicKey(renewed.key.getPublicKey().toBytes());
        assert.ok(
            new crypto.X509Certificate(renewed.certificate).publicKey.export({ format: 'der', type: 'spki' })
                .equals(publicKey.export({ format: 'der', type: 'spki' })),
            'the new certificate holds the new public key',
        );

        // The renewed identity can use the CA in turn (its token is accepted).
        const renewedUser = userOf(id, secret, HOSPITAL, renewed);
        const again = await hospital.ca.reenroll(renewedUser);
        assert.notEqual(serialOf(again.certificate), serialOf(renewed.certificate), 'reenroll with the renewed certificate');
    });

    await t.test('IdentityService.create (no type, no secret) and enroll', async () => {
        // The client sends {"id":…, "type":null, "affiliation":"hospital", "attrs":[],
        // "max_enrollments":1, "secret":null, "caname":…}.
        const created = newId('created');
        const createdSecret = await hospital.ca.newIdentityService().create({ enrollmentID: created, affiliation: 'hospital' }, hospital.admin);
        assert.equal(typeof createdSecret, 'string', 'create returns the secret');
        const createdEnrollment = await hospital.ca.enroll({ enrollmentID: created, enrollmentSecret: createdSecret });
        assert.equal(subjectOf(createdEnrollment.certificate).CN, created);
        assert.equal(certAttrs(createdEnrollment.certificate)['hf.Type'], 'client', 'the type defaults to client');
    });

    await t.test('IdentityService.getOne and AffiliationService.getAll', async () => {
        const response = await hospital.ca.newIdentityService().getOne(id, hospital.admin);
        assert.equal(response.success, true);
        const identity = response.result;
        assert.equal(identity.id, id);
        assert.equal(identity.type, 'client');
        assert.equal(identity.affiliation, 'hospital');
        assert.equal(identity.max_enrollments, 1, 'max_enrollments: the client sent 1');
        const attrs = Object.fromEntries(identity.attrs.map((a) => [a.name, a.value]));
        assert.equal(attrs.role, 'patient', `attrs: ${JSON.stringify(identity.attrs)}`);
        assert.equal(attrs['hf.EnrollmentID'], id);

        const affiliations = await hospital.ca.newAffiliationService().getAll(hospital.admin);
        assert.equal(affiliations.success, true);
        const names = (affiliations.result.affiliations ?? []).map((a) => a.name);
        assert.ok(names.includes('hospital'), `affiliation hospital is listed: ${JSON.stringify(affiliations.result)}`);
    });
});

test('revoke: by enrollment ID (no reason), the CRL lists the serials, enroll is refused', { timeout: TEST_TIMEOUT_MS }, async () => {
    const id = newId('revoked');
    // maxEnrollments 0: the CA's limit (unlimited), so a refused enroll after revocation is
    // because of the revocation.
    const { secret, enrollment, user } = await registerAndEnroll(hospital, id, { maxEnrollments: 0 });
    const second = await hospital.ca.enroll({ enrollmentID: id, enrollmentSecret: secret });
    const serials = [serialOf(enrollment.certificate), serialOf(second.certificate)].sort();
    const aki = normHex(akiOf(enrollment.certificate));

    // The documented call: the client sends {"id":…, "reason":null, "gencrl":true, "caname":…}.
    const response = await hospital.ca.revoke({ enrollmentID: id, gencrl: true }, hospital.admin);
    assert.equal(response.success, true);
    const revoked = response.result.RevokedCerts;
    assert.ok(Array.isArray(revoked), `RevokedCerts: ${JSON.stringify(response.result)}`);
    assert.deepEqual(
        revoked.map((c) => [c.Serial, c.AKI]).sort(),
        serials.map((serial) => [serial, aki]),
        'RevokedCerts: both certificates, serial and AKI in lowercase hex without leading zeros',
    );

    const caCert = new crypto.X509Certificate(enrollment.rootCertificate);
    assert.equal(typeof response.result.CRL, 'string', 'gencrl: true returns the CRL');
    const inRevokeCrl = parseCrl(Buffer.from(response.result.CRL, 'base64').toString('utf8'), caCert);
    for (const s of serials) assert.ok(inRevokeCrl.includes(s), `the revoke CRL lists ${s}`);

    const crl = await hospital.ca.generateCRL({}, hospital.admin);
    const inCrl = parseCrl(Buffer.from(crl, 'base64').toString('utf8'), caCert);
    for (const s of serials) assert.ok(inCrl.includes(s), `gencrl lists ${s}`);

    const err = await caRejection(() => hospital.ca.enroll({ enrollmentID: id, enrollmentSecret: secret }), `enroll of revoked ${id}`);
    assertCaError(err, 20, 'Authentication failure', `enroll of revoked ${id}`);
    const tokenErr = await caRejection(() => hospital.ca.reenroll(user), `reenroll with a revoked certificate`);
    assertCaError(tokenErr, 20, 'Authentication failure', 'reenroll with a revoked certificate');
});

test('revoke: one certificate by serial and AKI, with a reason', { timeout: TEST_TIMEOUT_MS }, async () => {
    const id = newId('revoked-cert');
    const { secret, enrollment } = await registerAndEnroll(hospital, id, { maxEnrollments: 0 });
    // As the certificate gives them: the serial in uppercase hex, the AKI with any leading zero.
    const serial = new crypto.X509Certificate(enrollment.certificate).serialNumber;
    const aki = akiOf(enrollment.certificate);

    const response = await hospital.ca.revoke({ serial, aki, reason: 'keycompromise' }, hospital.admin);
    assert.equal(response.success, true);
    assert.deepEqual(
        response.result.RevokedCerts.map((c) => [c.Serial, c.AKI]),
        [[normHex(serial), normHex(aki)]],
        'RevokedCerts: serial and AKI normalised (lowercase hex without leading zeros)',
    );
    assert.ok(!response.result.CRL, 'no CRL without gencrl');

    const crl = await hospital.ca.generateCRL({}, hospital.admin);
    const inCrl = parseCrl(Buffer.from(crl, 'base64').toString('utf8'), new crypto.X509Certificate(enrollment.rootCertificate));
    assert.ok(inCrl.includes(normHex(serial)), `gencrl lists ${serial}`);

    // Only that certificate is revoked, not the identity: it can enroll again.
    const again = await hospital.ca.enroll({ enrollmentID: id, enrollmentSecret: secret });
    assert.notEqual(serialOf(again.certificate), normHex(serial));

    const err = await caRejection(
        () => hospital.ca.revoke({ serial, aki, reason: 'keycompromise' }, hospital.admin),
        'revoking it again',
    );
    assertCaError(err, 66, `Certificate with serial ${normHex(serial)} and AKI ${normHex(aki)} was already revoked`, 'revoking it again');
});

test('refused: wrong secret, registration by a non-registrar', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await t.test('enroll with a wrong secret: Authentication failure (20)', async () => {
        const err = await caRejection(
            () => hospital.ca.enroll({ enrollmentID: hospital.adminId, enrollmentSecret: 'wrong-secret' }),
            'enroll with a wrong secret',
        );
        assertCaError(err, 20, 'Authentication failure', 'enroll with a wrong secret');
        assert.ok(err.message.includes('Authentication failure'), `message: ${err.message}`);
    });

    await t.test('enroll of an unknown ID: Authentication failure (20)', async () => {
        const err = await caRejection(
            () => hospital.ca.enroll({ enrollmentID: newId('nobody'), enrollmentSecret: 'x' }),
            'enroll of an unknown ID',
        );
        assertCaError(err, 20, 'Authentication failure', 'enroll of an unknown ID');
    });

    await t.test('a patient registering a user: Authorization failure (71)', async () => {
        const { user: patient } = await registerAndEnroll(hospital, newId('patient'), {
            attrs: [{ name: 'role', value: 'patient', ecert: true }],
        });
        const target = newId('by-patient');
        const err = await caRejection(
            () => hospital.ca.register({ enrollmentID: target, affiliation: 'hospital', role: 'client' }, patient),
            `register(${target}) by a patient`,
        );
        assertCaError(err, 71, 'Authorization failure', `register(${target}) by a patient`);
        assert.ok(err.message.includes('Authorization failure'), `message: ${err.message}`);
        const revokeErr = await caRejection(
            () => hospital.ca.revoke({ enrollmentID: patient.getName(), reason: 'superseded' }, patient),
            'revoke (of itself) by a patient',
        );
        assertCaError(revokeErr, 71, 'Authorization failure', 'revoke by a patient');
    });

    await t.test('a CSR with a P-384 key: a clear error, and the enrollment is not used up', async () => {
        const id = newId('p384');
        const secret = await hospital.ca.register(
            { enrollmentID: id, affiliation: 'hospital', role: 'client', maxEnrollments: 1 },
            hospital.admin,
        );
        const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
        const csr = jsrsasign.KJUR.asn1.csr.CSRUtil.newCSRPEM({
            subject: { str: `/CN=${id}` },
            sbjpubkey: jsrsasign.KEYUTIL.getKey(publicKey.export({ type: 'spki', format: 'pem' })),
            sigalg: 'SHA384withECDSA',
            sbjprvkey: jsrsasign.KEYUTIL.getKey(privateKey.export({ type: 'pkcs8', format: 'pem' })),
        });
        const err = await caRejection(
            () => hospital.ca.enroll({ enrollmentID: id, enrollmentSecret: secret, csr }),
            `enroll(${id}) with a P-384 CSR`,
        );
        assert.ok(err.errors[0].message.includes('ECDSA P-256'), `message: ${err.errors[0].message}`);
        // The one allowed enrollment is still there.
        const enrollment = await hospital.ca.enroll({ enrollmentID: id, enrollmentSecret: secret });
        assert.ok(enrollment.certificate.includes('BEGIN CERTIFICATE'));
    });

    await t.test('registering a duplicate ID: 74', async () => {
        const id = newId('dup');
        await hospital.ca.register({ enrollmentID: id, affiliation: 'hospital', role: 'client' }, hospital.admin);
        const err = await caRejection(
            () => hospital.ca.register({ enrollmentID: id, affiliation: 'hospital', role: 'client' }, hospital.admin),
            `register(${id}) twice`,
        );
        assertCaError(err, 74, `Identity '${id}' is already registered`, `register(${id}) twice`);
    });

    await t.test('an identity network generate issued cannot be registered again: 74', async () => {
        // drhouse's certificate came from `network generate`; a CA registration of the same
        // enrollment ID would give a second holder the same actor id on chain.
        const err = await caRejection(
            () => hospital.ca.register({ enrollmentID: 'drhouse', affiliation: 'hospital', role: 'client' }, hospital.admin),
            'register(drhouse)',
        );
        assertCaError(err, 74, "Identity 'drhouse' is already registered", 'register(drhouse)');
    });
});

test('a registrar acts only within its grants (Fabric CA rules)', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    // The registrar: clients only, attribute `role` only, affiliation hospital.
    const { user: registrar } = await registerAndEnroll(hospital, newId('registrar'), {
        attrs: [
            { name: 'hf.Registrar.Roles', value: 'client' },
            { name: 'hf.Registrar.Attributes', value: 'role' },
        ],
    });
    const identities = hospital.ca.newIdentityService();
    const adminBefore = await identities.getOne(hospital.adminId, hospital.admin);

    await t.test('modifying the bootstrap admin: refused (71), the admin unchanged', async () => {
        const err = await caRejection(
            () => identities.update(hospital.adminId, { attrs: [{ name: 'role', value: 'payer' }], enrollmentSecret: 'taken' }, registrar),
            'PUT identities/admin by a limited registrar',
        );
        assertCaError(err, 71, 'Authorization failure', 'modify admin');
        const adminAfter = await identities.getOne(hospital.adminId, hospital.admin);
        assert.deepEqual(adminAfter.result, adminBefore.result, 'the admin identity did not change');
        // Its secret still works, the one the attacker tried to set does not.
        await hospital.ca.enroll({ enrollmentID: hospital.adminId, enrollmentSecret: hospital.adminSecret });
    });

    await t.test('registering a peer, or a right it lacks: refused (71)', async () => {
        for (const [what, request] of [
            ['type peer', { enrollmentID: newId('as-peer'), affiliation: 'hospital', role: 'peer' }],
            ['hf.Revoker', { enrollmentID: newId('revoker'), affiliation: 'hospital', role: 'client', attrs: [{ name: 'hf.Revoker', value: 'true' }] }],
            ['the root affiliation', { enrollmentID: newId('root'), affiliation: '.', role: 'client' }],
        ]) {
            const err = await caRejection(() => hospital.ca.register(request, registrar), `register ${what}`);
            assertCaError(err, 71, 'Authorization failure', `register ${what}`);
            const lookup = await caRejection(() => identities.getOne(request.enrollmentID, hospital.admin), `${what} not registered`);
            assertCaError(lookup, 63, 'Failed to get User: sql: no rows in result set', `${what} not registered`);
        }
    });

    await t.test('a client with role=provider: allowed, within its grants', async () => {
        const id = newId('by-registrar');
        const secret = await hospital.ca.register(
            { enrollmentID: id, affiliation: 'hospital', role: 'client', attrs: [{ name: 'role', value: 'provider', ecert: true }] },
            registrar,
        );
        const enrollment = await hospital.ca.enroll({ enrollmentID: id, enrollmentSecret: secret });
        assert.equal(certAttrs(enrollment.certificate).role, 'provider');
    });
});

/**
 * A Fabric Gateway connection to the Hospital peer as a CA-enrolled identity, over
 * server-only TLS (the identity has no TLS client certificate); closed after the tests.
 */
function hospitalGateway(enrollment) {
    const peerNode = findNode('peer', HOSPITAL);
    const tlsCa = readFile(peerNode.tls_ca_file, `tls_ca_file of ${peerNode.name}`);
    const options = peerNode.tls_host ? { 'grpc.ssl_target_name_override': peerNode.tls_host } : {};
    const client = new grpc.Client(peerNode.address, grpc.credentials.createSsl(tlsCa), options);
    ctx.closeables.push(client);
    const gateway = connect({
        client,
        identity: { mspId: HOSPITAL, credentials: Buffer.from(enrollment.certificate) },
        signer: signers.newPrivateKeySigner(crypto.createPrivateKey(enrollment.key.toBytes())),
        evaluateOptions: deadline(10_000),
        endorseOptions: deadline(30_000),
        submitOptions: deadline(30_000),
        commitStatusOptions: deadline(60_000),
    });
    ctx.closeables.push(gateway);
    return gateway;
}

test('a patient enrolled at the Hospital CA submits through the Fabric Gateway', { timeout: TEST_TIMEOUT_MS }, async () => {
    const id = newId('gw-patient');
    const { enrollment } = await registerAndEnroll(hospital, id, { attrs: [{ name: 'role', value: 'patient', ecert: true }] });
    assert.equal(certAttrs(enrollment.certificate).role, 'patient', 'the ECert carries role=patient');

    const contract = hospitalGateway(enrollment).getNetwork(CHANNEL).getContract(CC_OR);

    const k = `ca-${id}`;
    const value = `written by ${id}`;
    const submitted = await contract.submitAsync('put', { arguments: [k, value] });
    const status = await submitted.getStatus();
    assert.equal(status.code, StatusCode.VALID, `put(${k}) by ${id} commits VALID (code ${status.code})`);
    assert.equal(status.successful, true);
    assert.equal(utf8.decode(await contract.evaluateTransaction('get', k)), value, `get(${k}) by ${id}`);
});

test('the medical chaincode reads the role of an identity from the Hospital CA', { timeout: TEST_TIMEOUT_MS }, async () => {
    // A patient (role attribute from the CA) registers themselves; a provider may not
    // register a patient (nor so pick a patient's key).
    const providerId = newId('gw-provider');
    const provider = await registerAndEnroll(hospital, providerId, { attrs: [{ name: 'role', value: 'provider', ecert: true }] });
    const patientId = newId('gw-patient2');
    const patient = await registerAndEnroll(hospital, patientId, { attrs: [{ name: 'role', value: 'patient', ecert: true }] });
    const medicalAs = (enrollment) => hospitalGateway(enrollment).getNetwork(CHANNEL).getContract('medical');
    // The patient's own certificate key is the key the chaincode registers.
    const publicKey = crypto.createPublicKey(patient.enrollment.certificate).export({ format: 'jwk' });
    const sec1 = Buffer.concat([Buffer.from([4]), Buffer.from(publicKey.x, 'base64url'), Buffer.from(publicKey.y, 'base64url')]);
    const registration = JSON.stringify({ patient_id: `${HOSPITAL}/${patientId}`, custodian: HOSPITAL, public_key: sec1.toString('hex') });

    const asProvider = medicalAs(provider.enrollment);
    await assert.rejects(
        () => asProvider.submitTransaction('register_patient', registration),
        (err) => {
            const text = [err.message, ...(err.details ?? []).map((d) => d.message)].join(' ');
            assert.ok(text.includes('register_patient requires role patient'), text);
            assert.ok(text.includes(`${HOSPITAL}/${providerId} has role provider`), text);
            return true;
        },
        'a provider may not register patients',
    );
    const asPatient = medicalAs(patient.enrollment);
    const result = JSON.parse(utf8.decode(await asPatient.submitTransaction('register_patient', registration)));
    assert.equal(result.registered_by, `${HOSPITAL}/${patientId}`, 'the chaincode saw the CA identity and its role');
    const read = JSON.parse(utf8.decode(await asProvider.evaluateTransaction('get_patient', `${HOSPITAL}/${patientId}`)));
    assert.equal(read.custodian, HOSPITAL);
});

test('a payer role its own CA issued mints no money: the consortium grants roles', { timeout: TEST_TIMEOUT_MS }, async () => {
    // The Hospital's CA admin registers one of its users with role=payer; on this
    // network the consortium granted the payer role to no organization.
    const minterId = newId('gw-minter');
    const minter = await registerAndEnroll(hospital, minterId, { attrs: [{ name: 'role', value: 'payer', ecert: true }] });
    assert.equal(certAttrs(minter.enrollment.certificate).role, 'payer', 'the ECert carries role=payer');
    const contract = hospitalGateway(minter.enrollment).getNetwork(CHANNEL).getContract('medical');
    const account = `${HOSPITAL}/${minterId}`;
    await assert.rejects(
        () => contract.submitTransaction('deposit', account, '1000000000'),
        (err) => {
            const text = [err.message, ...(err.details ?? []).map((d) => d.message)].join(' ');
            assert.ok(text.includes(`has not granted role payer to ${HOSPITAL}`), text);
            return true;
        },
        'the deposit is refused at endorsement',
    );
    await assert.rejects(
        () => contract.evaluateTransaction('balance', account),
        (err) => {
            const text = [err.message, ...(err.details ?? []).map((d) => d.message)].join(' ');
            assert.ok(text.includes('has not granted role payer'), text);
            return true;
        },
        'nor does the role let it read balances',
    );
});
