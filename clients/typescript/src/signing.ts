/**
 * The backoffice's request signing, byte for byte, with WebCrypto (browsers and Node).
 *
 * Version 2 is a profile of RFC 9421 HTTP Message Signatures: `Signature-Input` and
 * `Signature` (label `sig1`, `hmac-sha256`, `created` in Unix seconds, `keyid` the first 16 hex
 * digits of the key's SHA-256) covering "@method", "@path", "@query" and each of
 * content-type, if-match, if-none-match, idempotency-key and (with a body) an RFC 9530
 * `Content-Digest` the request carries. Version 1 signs `{METHOD}|{body}|{x-timestamp}` into
 * a hex `x-signature`. This small signer is checked against the shared `signing-vectors.json`.
 */
export type SignatureVersion = 1 | 2;

const encoder = new TextEncoder();
const LABEL = "sig1";
const ALGORITHM = "hmac-sha256";
const TARGET_COMPONENTS = ["@method", "@path", "@query"] as const;
/** Header fields version 2 covers whenever the request carries them, in this order. */
export const BOUND_HEADERS = [
  "content-type",
  "if-match",
  "if-none-match",
  "idempotency-key",
  "content-digest",
] as const;

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.length;
  }
  return bytes;
}

async function hmacSha256(key: string, message: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const hmacKey = await crypto.subtle.importKey(
    "raw",
    encoder.encode(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, message));
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

// --- version 1 ------------------------------------------------------------------------------

export interface Version1Input {
  method: string;
  /** The body exactly as sent (empty for none). */
  body: Uint8Array<ArrayBuffer>;
  /** Unix time in milliseconds, in decimal. */
  timestamp: string;
}

/** The exact bytes a version 1 signature covers: `{METHOD}|{body}|{x-timestamp}`. */
export function signedBytes(input: Version1Input): Uint8Array<ArrayBuffer> {
  const separator = encoder.encode("|");
  return concat(
    encoder.encode(input.method.toUpperCase()),
    separator,
    input.body,
    separator,
    encoder.encode(input.timestamp),
  );
}

/** The version 1 `x-signature` value: lower-case hex HMAC-SHA256 of the signed bytes. */
export async function sign(input: Version1Input, key: string): Promise<string> {
  return hex(await hmacSha256(key, signedBytes(input)));
}

// --- version 2 (RFC 9421) ---------------------------------------------------------------------

export interface Version2Input {
  method: string;
  /** The path as sent, percent-encoded. */
  path: string;
  /** The raw query, without `?` (empty for none). */
  query: string;
  /** The request's header fields (any case); the bound ones are signed. */
  headers: Record<string, string>;
  body: Uint8Array<ArrayBuffer>;
  /** Unix time in seconds. */
  created: number;
  /** Tells apart identical requests signed in the same second. */
  nonce?: string | undefined;
}

/** The `keyid` of a key: the first 16 hex digits of its SHA-256. */
export async function keyId(key: string): Promise<string> {
  return hex(await sha256(encoder.encode(key))).slice(0, 16);
}

/** The RFC 9530 `Content-Digest` of the body bytes. */
export async function contentDigest(body: Uint8Array<ArrayBuffer>): Promise<string> {
  return `sha-256=:${base64(await sha256(body))}:`;
}

/** The covered components, the signature base, and the headers that carry them. */
export async function signatureBase(
  input: Version2Input,
  key: string,
): Promise<{ base: string; signatureInput: string; contentDigest: string | null }> {
  const fields = new Map<string, string>();
  for (const [name, value] of Object.entries(input.headers)) {
    fields.set(name.toLowerCase(), value.trim());
  }
  const digest = input.body.length ? await contentDigest(input.body) : null;
  if (digest) fields.set("content-digest", digest);
  else fields.delete("content-digest");
  const headers = BOUND_HEADERS.filter((name) => fields.has(name));
  const components = [...TARGET_COMPONENTS, ...headers];
  const values: Record<string, string> = {
    "@method": input.method.toUpperCase(),
    "@path": input.path || "/",
    "@query": `?${input.query}`,
  };
  for (const name of headers) values[name] = fields.get(name) as string;
  const nonce = input.nonce === undefined ? "" : `;nonce="${input.nonce}"`;
  const params =
    `(${components.map((name) => `"${name}"`).join(" ")});created=${input.created}` +
    `;keyid="${await keyId(key)}";alg="${ALGORITHM}"${nonce}`;
  const lines = components.map((name) => `"${name}": ${values[name]}`);
  const base = [...lines, `"@signature-params": ${params}`].join("\n");
  if (!/^[\x20-\x7e\n]*$/.test(base)) {
    throw new Error("RFC 9421 signs ASCII only: a signed header or the target is not ASCII");
  }
  return { base, signatureInput: `${LABEL}=${params}`, contentDigest: digest };
}

/** `Signature-Input`, `Signature` and, with a body, `Content-Digest`. */
export async function version2Headers(
  input: Version2Input,
  key: string,
): Promise<Record<string, string>> {
  const { base, signatureInput, contentDigest } = await signatureBase(input, key);
  const signature = await hmacSha256(key, encoder.encode(base));
  const headers: Record<string, string> = {
    "Signature-Input": signatureInput,
    Signature: `${LABEL}=:${base64(signature)}:`,
  };
  if (contentDigest) headers["Content-Digest"] = contentDigest;
  return headers;
}

// --- signing a request -------------------------------------------------------------------------

export interface SigningOptions {
  /** The environment's `APP_SECRET_KEY`. */
  key: string;
  /** 2 (the default) binds path, query and headers; the service may refuse 1. */
  version?: SignatureVersion;
  /** The clock, in Unix milliseconds (tests pin it). */
  now?: () => number;
  /** A fresh nonce for each version 2 signature; return undefined for none (tests). */
  nonce?: () => string | undefined;
}

/**
 * Signs a `Request` over what it is about to send: the body's bytes, the URL's path and query,
 * and the headers version 2 binds (set them before signing). Sign afresh for every attempt: the
 * service accepts each signature of a POST, PATCH or DELETE once. Returns the same request.
 */
export async function signRequest(
  request: Request,
  { key, version = 2, now = Date.now, nonce = () => crypto.randomUUID() }: SigningOptions,
): Promise<Request> {
  const body = new Uint8Array(await request.clone().arrayBuffer());
  const time = Math.trunc(now());
  if (version === 1) {
    const timestamp = String(time);
    request.headers.set("x-timestamp", timestamp);
    request.headers.set("x-signature", await sign({ method: request.method, body, timestamp }, key));
    return request;
  }
  const url = new URL(request.url);
  const headers: Record<string, string> = {};
  for (const name of BOUND_HEADERS) {
    const value = request.headers.get(name);
    if (value !== null && name !== "content-digest") headers[name] = value;
  }
  const signed = await version2Headers(
    {
      method: request.method,
      path: url.pathname,
      query: url.search.slice(1),
      headers,
      body,
      created: Math.floor(time / 1000),
      nonce: nonce(),
    },
    key,
  );
  for (const [name, value] of Object.entries(signed)) request.headers.set(name, value);
  return request;
}

// --- the openapi-fetch middleware ---------------------------------------------------------------

/**
 * What `signingMiddleware` returns: an openapi-fetch `Middleware` (`client.use(...)`), typed here
 * without importing openapi-fetch, so that the package depends on nothing.
 */
export interface SigningMiddleware {
  onRequest(options: { request: Request }): Promise<Request>;
}

/** An openapi-fetch middleware that signs each request it sends with `signRequest`. */
export function signingMiddleware(options: SigningOptions): SigningMiddleware {
  return {
    async onRequest({ request }) {
      return signRequest(request, options);
    },
  };
}
