/**
 * The signing middleware reproduces every worked example in the shared signing vectors
 * (version 2 signature bases included), and signs the exact bytes that openapi-fetch sends.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import createClient from "openapi-fetch";

import type { paths } from "../example/schema.js";
import { sign, signatureBase, signedBytes, signingMiddleware } from "../src/index.js";

interface Vector1 {
  label: string;
  version: 1;
  method: string;
  path_and_query: string;
  body: string;
  x_timestamp: string;
  signed_string: string;
  x_signature: string;
}

interface Vector2 {
  label: string;
  version: 2;
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  body: string;
  created: number;
  keyid: string;
  expect_headers: Record<string, string | null>;
  signature_base: string;
}

type Vector = Vector1 | Vector2;

const VECTORS_FILE = process.env.SIGNING_VECTORS ?? "../../signing-vectors.json";
const shared = JSON.parse(readFileSync(VECTORS_FILE, "utf8")) as {
  key: string;
  vectors: Vector[];
  must_not_verify: { method: string; body: string; x_timestamp: string; x_signature: string }[];
};
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function target(vector: Vector): string {
  if (vector.version === 1) return vector.path_and_query;
  return vector.path + (vector.query ? `?${vector.query}` : "");
}

async function throughMiddleware(vector: Vector): Promise<Request> {
  const middleware = signingMiddleware({
    key: shared.key,
    version: vector.version,
    now: () => (vector.version === 1 ? Number(vector.x_timestamp) : vector.created * 1000 + 999),
    nonce: () => undefined,
  });
  const request = new Request(`http://127.0.0.1:8000${target(vector)}`, {
    method: vector.method,
    headers: vector.version === 2 ? vector.headers : {},
    ...(vector.body ? { body: vector.body } : {}),
  });
  const signed = await middleware.onRequest({ request });
  assert.ok(signed instanceof Request);
  return signed;
}

test("the vectors file holds both versions", () => {
  const versions = new Set(shared.vectors.map((vector) => vector.version));
  assert.deepEqual([...versions].sort(), [1, 2]);
});

for (const vector of shared.vectors) {
  if (vector.version === 1) {
    test(`signs exactly the vector's string: ${vector.label}`, async () => {
      const input = {
        method: vector.method,
        body: encoder.encode(vector.body),
        timestamp: vector.x_timestamp,
      };
      assert.equal(decoder.decode(signedBytes(input)), vector.signed_string);
      assert.equal(await sign(input, shared.key), vector.x_signature);
    });

    test(`the middleware sends the vector's headers: ${vector.label}`, async () => {
      const request = await throughMiddleware(vector);

      assert.equal(request.headers.get("x-timestamp"), vector.x_timestamp);
      assert.equal(request.headers.get("x-signature"), vector.x_signature);
      assert.equal(request.headers.get("signature"), null);
      assert.equal(await request.text(), vector.body);
    });
  } else {
    test(`builds exactly the vector's signature base: ${vector.label}`, async () => {
      const { base } = await signatureBase(
        {
          method: vector.method,
          path: vector.path,
          query: vector.query,
          headers: vector.headers,
          body: encoder.encode(vector.body),
          created: vector.created,
        },
        shared.key,
      );
      assert.equal(base, vector.signature_base);
    });

    test(`the middleware sends the vector's headers: ${vector.label}`, async () => {
      const request = await throughMiddleware(vector);

      for (const [name, value] of Object.entries(vector.expect_headers)) {
        assert.equal(request.headers.get(name), value, name);
      }
      assert.equal(request.headers.get("x-signature"), null);
      assert.equal(await request.text(), vector.body);
    });
  }
}

test("the must-not-verify case differs from a version 1 signature of its request", async () => {
  for (const forged of shared.must_not_verify) {
    const input = {
      method: forged.method,
      body: encoder.encode(forged.body),
      timestamp: forged.x_timestamp,
    };
    assert.notEqual(await sign(input, shared.key), forged.x_signature);
  }
});

test("a request openapi-fetch sends is signed over the very bytes and headers it carries", async () => {
  const sent: Request[] = [];
  const client = createClient<paths>({
    baseUrl: "http://127.0.0.1:8000",
    fetch: async (request: Request) => {
      sent.push(request);
      return new Response("{}", { status: 500, headers: { "Content-Type": "application/json" } });
    },
  });
  client.use(
    signingMiddleware({ key: shared.key, now: () => 1764158400000, nonce: () => "n0nce" }),
  );

  await client.PATCH("/api/heroes/{hero_id}", {
    params: { path: { hero_id: 42 }, header: { "If-Match": '"3"' } },
    body: { name: "Équipe Zürich", age: 31 },
  });

  const [request] = sent;
  assert.ok(request);
  const body = new Uint8Array(await request.arrayBuffer());
  assert.equal(decoder.decode(body), '{"name":"Équipe Zürich","age":31}');
  const { base } = await signatureBase(
    {
      method: "PATCH",
      path: "/api/heroes/42",
      query: "",
      headers: {
        "content-type": request.headers.get("content-type") ?? "",
        "if-match": '"3"',
      },
      body,
      created: 1764158400,
      nonce: "n0nce",
    },
    shared.key,
  );
  assert.match(base, /^"@method": PATCH\n"@path": \/api\/heroes\/42\n"@query": \?\n"content-type": /);
  assert.match(base, /"if-match": "3"\n"content-digest": sha-256=:/);
  assert.match(request.headers.get("signature-input") ?? "", /;nonce="n0nce"$/);
  assert.equal(request.headers.get("if-match"), '"3"');
});
