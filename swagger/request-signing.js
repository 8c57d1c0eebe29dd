// Signs Swagger UI's "Try it out" requests in the browser, byte for byte as the server
// verifies them (README, "Request signing"). The key is typed into this page (or the
// Authorize dialog's `signature` field) and stays in this browser tab: it is used by
// WebCrypto to compute the HMAC and is never sent, not even as a header value.
(function (root, factory) {
  const api = factory();
  if (typeof module === "object" && module.exports) {
    module.exports = api; // Node, where the tests load this exact file
  } else {
    root.requestSigning = api;
  }
})(globalThis, function () {
  "use strict";

  const SIGNED_PREFIX = "/api";
  const SIGNING_HEADERS = ["x-signature", "x-timestamp", "x-signature-version"];
  const STORAGE_KEY = "backoffice.signing";

  // Version 1: METHOD|body|timestamp. Version 2 also binds the target: METHOD|path?query|body|timestamp.
  function signedString(method, pathAndQuery, body, timestamp, version) {
    const parts = [method.toUpperCase()];
    if (version === 2) parts.push(pathAndQuery);
    parts.push(body, timestamp);
    return parts.join("|");
  }

  async function sign(key, method, pathAndQuery, body, timestamp, version) {
    const subtle = globalThis.crypto && globalThis.crypto.subtle;
    if (!subtle) {
      // Browsers offer WebCrypto only to secure pages: https, or http on localhost.
      throw new Error("request signing needs WebCrypto: open /docs over https or on localhost");
    }
    const encoder = new TextEncoder();
    const hmacKey = await subtle.importKey(
      "raw",
      encoder.encode(key),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    const message = encoder.encode(signedString(method, pathAndQuery, body, timestamp, version));
    const digest = new Uint8Array(await subtle.sign("HMAC", hmacKey, message));
    return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  function isSigned(pathname) {
    return pathname === SIGNED_PREFIX || pathname.startsWith(SIGNED_PREFIX + "/");
  }

  // Removes the signing headers Swagger UI may have set from the Authorize dialog, and returns
  // the x-signature value found there: that dialog is one place to enter the key.
  function takeSigningHeaders(headers) {
    let authorized = "";
    for (const name of Object.keys(headers)) {
      const lower = name.toLowerCase();
      if (!SIGNING_HEADERS.includes(lower)) continue;
      if (lower === "x-signature") authorized = String(headers[name]);
      delete headers[name];
    }
    return authorized;
  }

  // `settings()` gives {key, version}; `now()` the Unix time in ms; `base` resolves relative URLs.
  function makeRequestInterceptor({ settings, now = () => Date.now(), base }) {
    return async function signRequest(request) {
      const page = globalThis.location ? globalThis.location.href : undefined;
      const url = new URL(request.url, base || page);
      if (!isSigned(url.pathname)) return request;
      request.headers = request.headers || {};
      const authorized = takeSigningHeaders(request.headers);
      const { key, version } = settings();
      const secret = key || authorized;
      if (!secret) return request; // sent unsigned: the server's 401 says what is missing
      if (request.body != null && typeof request.body !== "string") {
        throw new Error("only a text (JSON) body can be signed");
      }
      const body = request.body == null ? "" : request.body;
      const timestamp = String(now());
      // What fetch sends for this URL: the same parser percent-encodes path and query.
      const target = url.pathname + url.search;
      const signature = await sign(secret, request.method, target, body, timestamp, version);
      request.headers["x-timestamp"] = timestamp;
      request.headers["x-signature"] = signature;
      if (version === 2) request.headers["x-signature-version"] = "2";
      return request;
    };
  }

  // The page's key and version inputs, remembered in this tab's sessionStorage only.
  function panelSettings(document, storage) {
    const keyInput = document.getElementById("signing-key");
    const versionInput = document.getElementById("signing-version");
    const saved = JSON.parse(storage.getItem(STORAGE_KEY) || "{}");
    if (saved.key) keyInput.value = saved.key;
    if (saved.version) versionInput.value = String(saved.version);
    const save = () =>
      storage.setItem(
        STORAGE_KEY,
        JSON.stringify({ key: keyInput.value, version: Number(versionInput.value) }),
      );
    keyInput.addEventListener("input", save);
    versionInput.addEventListener("change", save);
    return () => ({ key: keyInput.value, version: Number(versionInput.value) });
  }

  return { signedString, sign, makeRequestInterceptor, panelSettings };
});
