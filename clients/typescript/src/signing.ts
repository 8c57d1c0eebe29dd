/**
 * The backoffice's request-signing scheme, byte for byte, with WebCrypto (browsers and Node).
 *
 * Version 1 signs `{METHOD}|{body}|{x-timestamp}`; version 2 also binds the target,
 * `{METHOD}|{path}[?{query}]|{body}|{x-timestamp}`. The signature is the lower-case hex
 * HMAC-SHA256 of those bytes with the shared secret.
 */
import type { Middleware } from "openapi-fetch";

export type SignatureVersion = 1 | 2;

export interface SignatureInput {
  method: string;
  /** The request target as sent: path, then `?` and the raw query if there is one. */
  pathAndQuery: string;
  /** The body exactly as sent (empty for none). */
  body: Uint8Array;
  /** Unix time in milliseconds, in decimal. */
  timestamp: string;
  version: SignatureVersion;
}

const encoder = new TextEncoder();
const SEPARATOR = encoder.encode("|");

/** The exact bytes a signature covers. */
export function signedBytes(input: SignatureInput): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [encoder.encode(input.method.toUpperCase())];
  if (input.version === 2) {
    parts.push(encoder.encode(input.pathAndQuery));
  }
  parts.push(input.body, encoder.encode(input.timestamp));
  const length = parts.reduce((total, part) => total + part.length, 0) + parts.length - 1;
  const bytes = new Uint8Array(length);
  let offset = 0;
  parts.forEach((part, index) => {
    if (index > 0) {
      bytes.set(SEPARATOR, offset);
      offset += SEPARATOR.length;
    }
    bytes.set(part, offset);
    offset += part.length;
  });
  return bytes;
}

/** The `x-signature` value: lower-case hex HMAC-SHA256 of the signed bytes. */
export async function sign(input: SignatureInput, key: string): Promise<string> {
  const hmacKey = await crypto.subtle.importKey(
    "raw",
    encoder.encode(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const digest = new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, signedBytes(input)));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export interface SigningOptions {
  key: string;
  /** 2 binds the path and query too; the service may refuse 1 (`APP_SIGNATURE_MIN_VERSION`). */
  version?: SignatureVersion;
  /** The clock, in Unix milliseconds (tests pin it). */
  now?: () => number;
}

/**
 * An openapi-fetch middleware that signs each request over the bytes it is about to send:
 * the serialized body and the URL's path and query, with a fresh timestamp every time (the
 * service accepts each signature of a POST, PATCH or DELETE once).
 */
export function signingMiddleware({ key, version = 2, now = Date.now }: SigningOptions): Middleware {
  return {
    async onRequest({ request }) {
      const body = new Uint8Array(await request.clone().arrayBuffer());
      const url = new URL(request.url);
      const timestamp = String(Math.trunc(now()));
      const signature = await sign(
        { method: request.method, pathAndQuery: url.pathname + url.search, body, timestamp, version },
        key,
      );
      request.headers.set("x-timestamp", timestamp);
      request.headers.set("x-signature", signature);
      if (version !== 1) {
        request.headers.set("x-signature-version", String(version));
      }
      return request;
    },
  };
}
