// End-to-end encryption check of Myelin with the real matrix-js-sdk.
//
//     node tests/js/e2ee.mjs [BASE_URL]        (or $MYELIN_BASE_URL)
//
// Registers two fresh users through open registration (m.login.dummy),
// starts a MatrixClient with the SDK's Rust crypto (in-memory store, no
// IndexedDB) for each, then: alice creates a room with m.room.encryption
// (m.megolm.v1.aes-sha2) and invites bob, bob joins, alice sends an
// encrypted message that bob must decrypt, bob replies encrypted and alice
// must decrypt that. The plaintexts are compared, the SDK must see both
// events as encrypted, and a raw GET /messages must show both as
// m.room.encrypted megolm events with no plaintext in them.
//
// Cross-signing and key backup are never bootstrapped: the SDK only needs
// /keys/upload, /keys/query, /keys/claim, to-device messages and /sync
// (it does look for a backup with GET /room_keys/version, and copes with a
// 404). Device-list change tracking is not relied on either: the room is
// made only once both devices' keys and one-time keys are on the server,
// so each side's single /keys/query already finds the other's device.
//
// Exit status 0 on success; 1 with "e2ee: FAIL at stage ...: reason" on a
// failed check (a 5xx answer to any SDK request is one); 2 on the overall
// timeout ($E2EE_TIMEOUT_MS, default 60000). The SDK's own logging
// (console.*) is buffered and printed only on failure, or always with
// E2EE_VERBOSE=1. Every non-2xx HTTP response the SDK received is listed
// at the end (on success too), and so is any /sync shape the SDK would
// misread ("server gap: ..."), so server gaps show up.

import { randomBytes } from "node:crypto";

const BASE_URL = (process.argv[2] || process.env.MYELIN_BASE_URL || "")
    .replace(/\/+$/, "");
const TIMEOUT_MS = Number(process.env.E2EE_TIMEOUT_MS || 60000);
const VERBOSE = process.env.E2EE_VERBOSE === "1";
const STEP_MS = 20000;

const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(2)}s`;
const outRaw = (line) => process.stdout.write(line + "\n");
const out = (line) => outRaw(`${line} [${elapsed()}]`);
const err = (line) => process.stderr.write(line + "\n");

if (!BASE_URL) {
    err("usage: node e2ee.mjs BASE_URL (or set MYELIN_BASE_URL)");
    process.exit(64);
}

// --------------------------------------------------------------------------
// Log capture: the SDK (loglevel looks console.* up at call time) and the
// Rust tracing layer both write through console, so redirecting console
// before the SDK is imported captures all of it.
// --------------------------------------------------------------------------

const LOG_KEEP = 600;
const logBuffer = [];

function fmtArg(a) {
    if (typeof a === "string") return a;
    if (a instanceof Error) return a.stack || String(a);
    try { return JSON.stringify(a); } catch { return String(a); }
}

for (const level of ["log", "debug", "info", "warn", "error", "trace"]) {
    console[level] = (...args) => {
        const line = `[${elapsed()}] ${level}: ` +
            args.map(fmtArg).join(" ");
        if (VERBOSE) {
            err(line);
            return;
        }
        logBuffer.push(line);
        if (logBuffer.length > LOG_KEEP) logBuffer.shift();
    };
}

// --------------------------------------------------------------------------
// HTTP: every request the SDK makes goes through this fetch, which records
// the non-2xx answers (method, path, status, errcode/error).
// --------------------------------------------------------------------------

const failedRequests = [];
let serverErrors = 0;
const gaps = new Set();

function noteGap(text) {
    gaps.add(text);
}

function pathOf(url) {
    try {
        const u = new URL(url);
        u.searchParams.delete("access_token");
        const query = u.searchParams.toString();
        return u.pathname + (query ? "?" + query : "");
    } catch {
        return String(url);
    }
}

async function recordingFetch(input, init = {}) {
    // The SDK passes a URL object (or a string); a Request has .url.
    const url = input instanceof URL || typeof input === "string"
        ? String(input) : input.url;
    const method = (init.method || "GET").toUpperCase();
    const resp = await fetch(input, init);
    if (resp.status < 200 || resp.status >= 300) {
        let body = "";
        try { body = await resp.clone().text(); } catch { /* ignore */ }
        if (resp.status >= 500) serverErrors += 1;
        failedRequests.push(`${method} ${pathOf(url)} -> ${resp.status} ` +
            body.slice(0, 300).replace(/\s+/g, " "));
    } else if (new URL(url).pathname.endsWith("/sync")) {
        await checkSyncShape(url, resp.clone());
    }
    return resp;
}

// The SDK asks /sync for MSC4222 under its unstable name and reads only
// the unstable answer key; a server that answers with the stable
// `state_after` leaves the SDK without any room state (so, among other
// things, it never learns that a joined room is encrypted).
async function checkSyncShape(url, resp) {
    if (new URL(url).searchParams.get("org.matrix.msc4222.use_state_after") !== "true") {
        return;
    }
    let body;
    try { body = await resp.json(); } catch { return; }
    for (const section of ["join", "leave"]) {
        for (const [roomId, room] of Object.entries(body?.rooms?.[section] || {})) {
            if ("state_after" in room && !("org.matrix.msc4222.state_after" in room)) {
                noteGap(`/sync?org.matrix.msc4222.use_state_after=true answered ` +
                    `rooms.${section}[${roomId}] with "state_after" instead of ` +
                    `"org.matrix.msc4222.state_after" (the SDK reads only the ` +
                    `unstable key, so it sees no room state)`);
            }
        }
    }
}

// --------------------------------------------------------------------------
// Outcome handling and the overall timeout.
// --------------------------------------------------------------------------

let finished = false;
let stage = "start";

function reportRequests(write) {
    for (const gap of gaps) write(`e2ee: server gap: ${gap}`);
    if (failedRequests.length === 0) {
        write("e2ee: no non-2xx HTTP responses");
        return;
    }
    // Group identical lines so a retried request shows once with a count.
    const counts = new Map();
    for (const line of failedRequests) {
        counts.set(line, (counts.get(line) || 0) + 1);
    }
    write(`e2ee: non-2xx HTTP responses seen by the SDK (${failedRequests.length}):`);
    for (const [line, n] of counts) {
        write(`  ${n > 1 ? `${n}x ` : ""}${line}`);
    }
}

function fail(message, code = 1) {
    if (finished) return;
    finished = true;
    err(`e2ee: FAIL at stage "${stage}": ${message}`);
    reportRequests(err);
    if (!VERBOSE && logBuffer.length) {
        err(`--- last ${logBuffer.length} SDK log lines ---`);
        for (const line of logBuffer) err(line);
        err("--- end of SDK log ---");
    }
    process.exit(code);
}

const overall = setTimeout(
    () => fail(`timed out after ${TIMEOUT_MS} ms`, 2), TIMEOUT_MS);
process.on("unhandledRejection", (e) => fail(`unhandled rejection: ${fmtArg(e)}`));
process.on("uncaughtException", (e) => fail(`uncaught exception: ${fmtArg(e)}`));

function check(cond, message) {
    if (!cond) throw new Error(message);
}

async function waitFor(what, predicate, timeoutMs = STEP_MS) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = await predicate();
        if (value) return value;
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        }
        await new Promise((r) => setTimeout(r, 50));
    }
}

// --------------------------------------------------------------------------
// Raw client-server calls (registration and the wire checks).
// --------------------------------------------------------------------------

async function api(method, path, { token, body } = {}) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const resp = await fetch(BASE_URL + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await resp.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: resp.status, json, text };
}

async function register(localpart) {
    // No password: the test never logs in again, and hashing one costs
    // the server (under ASan) a good part of a second.
    const body = {
        username: localpart,
        initial_device_display_name: `js-sdk ${localpart}`,
        auth: { type: "m.login.dummy" },
    };
    let r = await api("POST", "/_matrix/client/v3/register", { body });
    if (r.status === 401 && r.json && r.json.session) {
        body.auth.session = r.json.session;
        r = await api("POST", "/_matrix/client/v3/register", { body });
    }
    check(r.status === 200 && r.json && r.json.access_token && r.json.device_id,
        `register ${localpart}: ${r.status} ${r.text.slice(0, 300)}`);
    return { userId: r.json.user_id, accessToken: r.json.access_token,
        deviceId: r.json.device_id };
}

// The user's device keys as another user sees them through /keys/query.
async function deviceKeysVisible(viewer, owner) {
    const r = await api("POST", "/_matrix/client/v3/keys/query", {
        token: viewer.accessToken,
        body: { device_keys: { [owner.userId]: [] } },
    });
    const dev = r.json?.device_keys?.[owner.userId]?.[owner.deviceId];
    return Boolean(dev && dev.keys && dev.keys[`curve25519:${owner.deviceId}`]);
}

// How many signed_curve25519 one-time keys the device has on the server
// (an empty /keys/upload only reads the counts).
async function oneTimeKeyCount(who) {
    const r = await api("POST", "/_matrix/client/v3/keys/upload",
        { token: who.accessToken, body: {} });
    return r.json?.one_time_key_counts?.signed_curve25519 || 0;
}

// --------------------------------------------------------------------------
// The exchange.
// --------------------------------------------------------------------------

async function startClient(sdk, creds) {
    const client = sdk.createClient({
        baseUrl: BASE_URL,
        userId: creds.userId,
        accessToken: creds.accessToken,
        deviceId: creds.deviceId,
        fetchFn: recordingFetch,
        timelineSupport: true,
    });
    await client.initRustCrypto({ useIndexedDB: false });
    const prepared = new Promise((resolve, reject) => {
        client.on(sdk.ClientEvent.Sync, (state, _prev, data) => {
            if (state === "PREPARED" || state === "SYNCING") resolve();
            if (state === "ERROR") {
                reject(new Error(`${creds.userId} sync error: ${fmtArg(data?.error)}`));
            }
        });
    });
    await client.startClient({ initialSyncLimit: 20 });
    await prepared;
    return client;
}

async function decryptedEvent(client, roomId, eventId) {
    const room = client.getRoom(roomId);
    const ev = room?.findEventById(eventId);
    if (!ev) return null;
    if (ev.isBeingDecrypted() || ev.shouldAttemptDecryption()) {
        await client.decryptEventIfNeeded(ev);
    }
    if (ev.isDecryptionFailure()) return null;
    if (ev.getType() !== "m.room.message") return null;
    return ev;
}

async function receiveAndCheck(client, name, roomId, eventId, expected) {
    let lastState = "not in the timeline yet";
    const ev = await waitFor(`${name} to receive and decrypt ${eventId}`, async () => {
        const got = await decryptedEvent(client, roomId, eventId);
        const raw = client.getRoom(roomId)?.findEventById(eventId);
        if (raw) {
            lastState = raw.isDecryptionFailure()
                ? `decryption failure: ${raw.decryptionFailureReason} ` +
                  `(${raw.getContent()?.body})`
                : `type ${raw.getType()}, wire type ${raw.getWireType()}`;
        }
        return got;
    }).catch((e) => { throw new Error(`${e.message} (last state: ${lastState})`); });
    check(ev.isEncrypted(), `${name}: event ${eventId} was not encrypted on the wire`);
    check(ev.getWireType() === "m.room.encrypted",
        `${name}: wire type is ${ev.getWireType()}`);
    check(ev.getWireContent().algorithm === "m.megolm.v1.aes-sha2",
        `${name}: wire algorithm is ${ev.getWireContent().algorithm}`);
    const body = ev.getContent().body;
    check(body === expected,
        `${name}: decrypted body ${JSON.stringify(body)} != ${JSON.stringify(expected)}`);
    out(`e2ee: ${name} decrypted ${eventId}: ${JSON.stringify(body)}`);
}

async function main() {
    // Loading the SDK takes a second or so; register meanwhile.
    stage = "import SDK and register";
    const tag = randomBytes(4).toString("hex");
    const [sdk, aliceCreds, bobCreds] = await Promise.all([
        import("matrix-js-sdk"),
        register(`jsalice${tag}`),
        register(`jsbob${tag}`),
    ]);
    out(`e2ee: registered ${aliceCreds.userId} (${aliceCreds.deviceId}) and ` +
        `${bobCreds.userId} (${bobCreds.deviceId}) on ${BASE_URL}`);

    stage = "start clients";
    const [alice, bob] = await Promise.all(
        [startClient(sdk, aliceCreds), startClient(sdk, bobCreds)]);
    out("e2ee: both clients synced with Rust crypto");

    // Device-list change tracking is not relied on: each side asks for the
    // other's keys once, so both must have been uploaded before the room
    // (and with it the key queries) exists.
    stage = "wait for key upload";
    await waitFor("bob's device keys to be visible to alice",
        () => deviceKeysVisible(aliceCreds, bobCreds));
    await waitFor("alice's device keys to be visible to bob",
        () => deviceKeysVisible(bobCreds, aliceCreds));
    await waitFor("bob's one-time keys", async () => (await oneTimeKeyCount(bobCreds)) > 0);
    await waitFor("alice's one-time keys", async () => (await oneTimeKeyCount(aliceCreds)) > 0);

    stage = "create room";
    const { room_id: roomId } = await alice.createRoom({
        preset: "private_chat",
        name: `js-sdk e2ee ${tag}`,
        invite: [bobCreds.userId],
        initial_state: [{
            type: "m.room.encryption",
            state_key: "",
            content: { algorithm: "m.megolm.v1.aes-sha2" },
        }],
    });
    out(`e2ee: alice created ${roomId}`);

    stage = "bob joins";
    await waitFor("bob to see the invite",
        () => bob.getRoom(roomId)?.getMyMembership() === "invite");
    await bob.joinRoom(roomId);
    await waitFor("alice to see bob joined",
        () => alice.getRoom(roomId)?.getMember(bobCreds.userId)?.membership === "join");
    await waitFor("bob's client to see itself joined",
        () => bob.getRoom(roomId)?.getMyMembership() === "join");
    // The SDK configures a room's encryption from the m.room.encryption
    // event in the state /sync gives it; without that it refuses to send.
    for (const [name, client] of [["alice", alice], ["bob", bob]]) {
        await waitFor(`${name}'s crypto to know the room is encrypted (it needs ` +
            "m.room.encryption in the room state /sync returns)",
        () => client.getCrypto().isEncryptionEnabledInRoom(roomId), 10000);
    }

    stage = "alice -> bob";
    const hello = `hello bob, secret ${randomBytes(6).toString("hex")}`;
    const sent1 = await alice.sendMessage(roomId, { msgtype: "m.text", body: hello });
    await receiveAndCheck(bob, "bob", roomId, sent1.event_id, hello);

    stage = "bob -> alice";
    const reply = `hi alice, secret ${randomBytes(6).toString("hex")}`;
    const sent2 = await bob.sendMessage(roomId, { msgtype: "m.text", body: reply });
    await receiveAndCheck(alice, "alice", roomId, sent2.event_id, reply);

    stage = "wire check";
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}` +
        "/messages?dir=b&limit=50";
    const msgs = await api("GET", path, { token: bobCreds.accessToken });
    check(msgs.status === 200, `GET /messages: ${msgs.status} ${msgs.text.slice(0, 300)}`);
    for (const id of [sent1.event_id, sent2.event_id]) {
        const ev = msgs.json.chunk.find((e) => e.event_id === id);
        check(ev, `GET /messages does not contain ${id}`);
        check(ev.type === "m.room.encrypted", `${id} is ${ev.type} on the wire`);
        check(ev.content.algorithm === "m.megolm.v1.aes-sha2",
            `${id} has algorithm ${ev.content.algorithm}`);
        check(typeof ev.content.ciphertext === "string" && ev.content.ciphertext.length > 0,
            `${id} has no ciphertext`);
    }
    check(!msgs.text.includes(hello) && !msgs.text.includes(reply),
        "a plaintext appears in the raw /messages response");
    const enc = msgs.json.chunk.find((e) => e.type === "m.room.encryption");
    if (enc) {
        check(enc.content.algorithm === "m.megolm.v1.aes-sha2",
            `m.room.encryption algorithm is ${enc.content.algorithm}`);
    }
    out("e2ee: both messages are m.room.encrypted (megolm) on the wire");

    stage = "stop";
    alice.stopClient();
    bob.stopClient();
    check(serverErrors === 0, `the server answered ${serverErrors} request(s) with a 5xx`);
}

main().then(() => {
    if (finished) return;
    finished = true;
    clearTimeout(overall);
    reportRequests(outRaw);
    out(`e2ee: OK in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    process.exit(0);
}, (e) => fail(e && e.stack ? e.stack : String(e)));
