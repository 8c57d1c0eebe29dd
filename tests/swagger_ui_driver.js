// Runs the request-signing script that /docs serves, in Node (which has WebCrypto and fetch,
// as a browser does), on the cases that tests/test_swagger_ui.py sends as JSON on stdin:
//   node swagger_ui_driver.js SCRIPT.js < cases.json > results.json
// It asserts nothing itself: it reports what the script did, and the Python test judges.
"use strict";

// Node 20 has WebCrypto as a global, like browsers; Debian's older Node only as a module.
globalThis.crypto ??= require("node:crypto").webcrypto;
globalThis.requestSigning = require(process.argv[2]);
const signingScript = globalThis.requestSigning;
const { runSigningVectors } = require("./swagger_ui_vectors.js");

// A request as Swagger UI hands it to its requestInterceptor.
function swaggerRequest({ url, method, body, headers }) {
  const request = { url, method, headers: { ...(headers || {}) } };
  if (body !== undefined) request.body = body;
  return request;
}

function interceptorFor(testCase) {
  return signingScript.makeRequestInterceptor({
    settings: () => ({
      key: testCase.key,
      version: testCase.version,
      newIdempotencyKeys: Boolean(testCase.new_idempotency_keys),
    }),
    origin: testCase.origin,
    ...(testCase.now === undefined ? {} : { now: () => Number(testCase.now) }),
  });
}

async function intercept(testCase) {
  try {
    const request = await interceptorFor(testCase)(swaggerRequest(testCase.request));
    return { url: request.url, method: request.method, headers: request.headers };
  } catch (error) {
    return { error: String(error.message) };
  }
}

async function send(testCase) {
  const request = await interceptorFor(testCase)(swaggerRequest(testCase.request));
  // What swagger-client does next: fetch(request.url, request).
  const response = await fetch(request.url, request);
  return { status: response.status, body: await response.text(), sent: request.headers };
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const cases = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const results = { vectors: [], intercepted: [], sent: [], hints: [] };
  if (cases.vectors) results.vectors = await runSigningVectors(cases.vectors);
  for (const testCase of cases.intercept || []) results.intercepted.push(await intercept(testCase));
  for (const refusal of cases.hints || []) {
    results.hints.push(signingScript.refusalHint(refusal.text, refusal.date, refusal.now));
  }
  // One after another, as a person clicks "Execute": each gets its own timestamp.
  for (const testCase of cases.send || []) results.sent.push(await send(testCase));
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => {
  process.stderr.write(String(error.stack || error));
  process.exit(1);
});
