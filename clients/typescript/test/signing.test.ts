/**
 * The signing middleware reproduces every worked example in the shared signing vectors, and
 * signs the exact bytes that openapi-fetch sends.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import createClient, { type Middleware } from "openapi-fetch";

import type { paths } from "../src/schema.js";
import { sign, signedBytes, signingMiddleware, type SignatureVersion } from "../src/signing.js";

interface Vector {
  label: string;
  version: SignatureVersion;
  method: string;
  path_and_query: string;
  body: string;
  x_timestamp: string;
  signed_string: string;
  x_signature: string;
}

const VECTORS_FILE = process.env.SIGNING_VECTORS ?? "../../signing-vectors.json";
const shared = JSON.parse(readFileSync(VECTORS_FILE, "utf8")) as { key: string; vectors: Vector[] };
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function inputOf(vector: Vector) {
  return {
    method: vector.method,
    pathAndQuery: vector.path_and_query,
    body: encoder.encode(vector.body),
    timestamp: vector.x_timestamp,
    version: vector.version,
  };
}

type RequestHook = NonNullable<Middleware["onRequest"]>;

async function throughMiddleware(vector: Vector): Promise<Request> {
  const middleware = signingMiddleware({
    key: shared.key,
    version: vector.version,
    now: () => Number(vector.x_timestamp),
  });
  const request = new Request(`http://127.0.0.1:8000${vector.path_and_query}`, {
    method: vector.method,
    ...(vector.body ? { body: vector.body } : {}),
  });
  const onRequest = middleware.onRequest as RequestHook;
  const signed = await onRequest({ request } as Parameters<RequestHook>[0]);
  assert.ok(signed instanceof Request);
  return signed;
}

test("the vectors file holds both versions", () => {
  const versions = new Set(shared.vectors.map((vector) => vector.version));
  assert.deepEqual([...versions].sort(), [1, 2]);
});

for (const vector of shared.vectors) {
  test(`signs exactly the vector's string: ${vector.label}`, async () => {
    assert.equal(decoder.decode(signedBytes(inputOf(vector))), vector.signed_string);
    assert.equal(await sign(inputOf(vector), shared.key), vector.x_signature);
  });

  test(`the middleware sends the vector's headers: ${vector.label}`, async () => {
    const request = await throughMiddleware(vector);

    assert.equal(request.headers.get("x-timestamp"), vector.x_timestamp);
    assert.equal(request.headers.get("x-signature"), vector.x_signature);
    assert.equal(
      request.headers.get("x-signature-version"),
      vector.version === 1 ? null : String(vector.version),
    );
    assert.equal(await request.text(), vector.body);
  });
}

test("a request openapi-fetch sends is signed over the very bytes it carries", async () => {
  const sent: Request[] = [];
  const client = createClient<paths>({
    baseUrl: "http://127.0.0.1:8000",
    fetch: async (request: Request) => {
      sent.push(request);
      return new Response("{}", { status: 500, headers: { "Content-Type": "application/json" } });
    },
  });
  client.use(signingMiddleware({ key: shared.key, version: 2, now: () => 1764158400000 }));

  await client.PATCH("/api/heroes/{hero_id}", {
    params: { path: { hero_id: 42 }, header: { "If-Match": '"3"' } },
    body: { name: "Équipe Zürich", age: 31 },
  });

  const [request] = sent;
  assert.ok(request);
  const body = new Uint8Array(await request.arrayBuffer());
  assert.equal(decoder.decode(body), '{"name":"Équipe Zürich","age":31}');
  const expected = await sign(
    { method: "PATCH", pathAndQuery: "/api/heroes/42", body, timestamp: "1764158400000", version: 2 },
    shared.key,
  );
  assert.equal(request.headers.get("x-signature"), expected);
  assert.equal(request.headers.get("x-timestamp"), "1764158400000");
  assert.equal(request.headers.get("if-match"), '"3"');
});
