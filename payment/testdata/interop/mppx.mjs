// Drives the mppx TypeScript SDK (wevm's reference implementation of
// draft-ryan-httpauth-payment) for payment/interop_mppx_test.go.
//
// Usage: node mppx.mjs <mppx-dir>, with a JSON job on stdin:
//
//	{"ops": [{"op": "...", ...}, ...]}
//
// and one JSON answer on stdout: {"results": [{"ok": true, "value": ...} |
// {"ok": false, "error": "..."}, ...]}, one result per op, in order.
//
// Header values cross the process boundary as they cross the wire: the
// Go side sends and receives them as base64 of their raw bytes ("…B64"
// members), and this script maps bytes to JavaScript strings one to one
// (latin1), as fetch's Headers does. Ops:
//
//	parseChallenges {headerB64, secret?}  Challenge.deserializeList (+ verify)
//	fetch402        {url, secret?}        fetch, then Challenge.fromResponseList
//	parseCredential {header, secret?}     Credential.deserialize (+ verify)
//	parseReceipt    {header}              Receipt.deserialize
//	makeChallenges  {challenges: [params], secret?}
//	                                      Challenge.from + serialize, merged
//	                                      into one field value with ", "
//	makeCredential  {challenge: params, secret?, payload, source?}
//	                                      Credential.from + serialize
//	makeReceipt     {receipt}             Receipt.from + serialize
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: node mppx.mjs <dir containing node_modules/mppx>\n');
  process.exit(2);
}
// The package root needs the optional peer viem; the codec modules do not,
// so they are loaded by file.
const mod = (name) =>
  import(pathToFileURL(path.join(dir, 'node_modules', 'mppx', 'dist', name)).href);
const Challenge = await mod('Challenge.js');
const Credential = await mod('Credential.js');
const Receipt = await mod('Receipt.js');
const PaymentRequest = await mod('PaymentRequest.js');

const bytesToHeader = (b64) => Buffer.from(b64, 'base64').toString('latin1');
const headerToBytes = (s) => {
  for (const ch of s) {
    if (ch.codePointAt(0) > 0xff) throw new Error(`header value is not a ByteString: ${JSON.stringify(ch)}`);
  }
  return Buffer.from(s, 'latin1').toString('base64');
};

// plain turns a parsed challenge into JSON with the request re-encoded the
// way mppx binds it (JCS + base64url), so the Go side can compare it with
// the wire string it sent.
const plain = (c, secret) => ({
  ...c,
  requestB64: PaymentRequest.serialize(c.request),
  ...(secret !== undefined && { verified: Challenge.verify(c, { secretKey: secret }) }),
});

const ops = {
  parseChallenges: ({ headerB64, secret }) =>
    Challenge.deserializeList(bytesToHeader(headerB64)).map((c) => plain(c, secret)),

  fetch402: async ({ url, secret }) => {
    const res = await fetch(url, { signal: AbortSignal.timeout(10000) });
    await res.arrayBuffer();
    return {
      status: res.status,
      cacheControl: res.headers.get('cache-control'),
      challenges: Challenge.fromResponseList(res).map((c) => plain(c, secret)),
    };
  },

  parseCredential: ({ header, secret }) => {
    const cred = Credential.deserialize(header);
    return { ...cred, challenge: plain(cred.challenge, secret) };
  },

  parseReceipt: ({ header }) => Receipt.deserialize(header),

  makeChallenges: ({ challenges, secret }) => {
    const made = challenges.map((p) =>
      Challenge.from(secret !== undefined ? { ...p, secretKey: secret } : p),
    );
    return {
      challenges: made.map((c) => plain(c, secret)),
      headerB64: headerToBytes(made.map((c) => Challenge.serialize(c)).join(', ')),
    };
  },

  makeCredential: ({ challenge, secret, payload, source }) => {
    // A challenge this script printed earlier may come back: drop the
    // members plain added.
    const { requestB64: _r, verified: _v, ...params } = challenge;
    const c = Challenge.from(secret !== undefined ? { ...params, secretKey: secret } : params);
    const cred = Credential.from({ challenge: c, payload, ...(source && { source }) });
    return { challenge: plain(c, secret), header: Credential.serialize(cred) };
  },

  makeReceipt: ({ receipt }) => Receipt.serialize(Receipt.from(receipt)),
};

let input = '';
for await (const chunk of process.stdin) input += chunk;
const job = JSON.parse(input);
const results = [];
for (const o of job.ops) {
  try {
    const fn = ops[o.op];
    if (!fn) throw new Error(`unknown op ${o.op}`);
    results.push({ ok: true, value: await fn(o) });
  } catch (e) {
    results.push({ ok: false, error: String(e?.message ?? e) });
  }
}
process.stdout.write(JSON.stringify({ results }));
