// Signs Swagger UI's "Try it out" requests in the browser, byte for byte as the server verifies
// them (README, "Request signing"; worked examples in signing-vectors.json). The key is typed
// into this page's one key field and used by WebCrypto to compute the HMAC: it is never sent,
// it is kept in memory unless the person ticks "keep for this tab", and only requests to the
// page's own origin are signed.
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
  // Whatever a request carries under these names is replaced by this script's signature.
  const SIGNING_HEADERS = [
    "x-signature",
    "x-timestamp",
    "x-signature-version",
    "signature",
    "signature-input",
    "content-digest",
  ];
  // Version 2 covers each of these that the request carries, in this order (signing-vectors.json).
  const CONDITIONAL_HEADERS = ["if-match", "if-none-match", "idempotency-key"];
  const LABEL = "sig1";
  const ALGORITHM = "hmac-sha256";
  const STORAGE_KEY = "backoffice.signing-key";
  const encoder = new TextEncoder();

  function subtle() {
    const crypto = globalThis.crypto;
    if (!crypto || !crypto.subtle) {
      // Browsers offer WebCrypto only to secure pages: https, or http on localhost.
      throw new Error("request signing needs WebCrypto: open /docs over https or on localhost");
    }
    return crypto.subtle;
  }

  async function hmacSha256(key, message) {
    const hmacKey = await subtle().importKey(
      "raw",
      encoder.encode(key),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    return new Uint8Array(await subtle().sign("HMAC", hmacKey, encoder.encode(message)));
  }

  async function sha256(text) {
    return new Uint8Array(await subtle().digest("SHA-256", encoder.encode(text)));
  }

  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const base64 = (bytes) => btoa(String.fromCharCode(...bytes));

  // Version 1: `{METHOD}|{body}|{x-timestamp}`, the hex HMAC in x-signature.
  function signedString(method, body, timestamp) {
    return [method.toUpperCase(), body, timestamp].join("|");
  }

  async function signV1(key, method, body, timestamp) {
    return hex(await hmacSha256(key, signedString(method, body, timestamp)));
  }

  // The first 16 hex digits of SHA-256 of the key: names the key without revealing it.
  async function keyId(key) {
    return hex(await sha256(key)).slice(0, 16);
  }

  function headerValue(headers, name) {
    for (const [header, value] of Object.entries(headers)) {
      if (header.toLowerCase() === name) return String(value).trim();
    }
    return undefined;
  }

  // Version 2, the RFC 9421 profile: the signature base and the headers that carry it.
  // `path` and `query` as they go on the wire (query without its "?"), `created` in seconds.
  async function signV2({ key, method, path, query, headers, body, created }) {
    const components = [
      ["@method", method.toUpperCase()],
      ["@path", path],
      ["@query", "?" + query],
    ];
    const contentType = headerValue(headers, "content-type");
    if (contentType !== undefined) components.push(["content-type", contentType]);
    for (const name of CONDITIONAL_HEADERS) {
      const value = headerValue(headers, name);
      if (value !== undefined) components.push([name, value]);
    }
    const added = {};
    if (body) {
      added["Content-Digest"] = `sha-256=:${base64(await sha256(body))}:`;
      components.push(["content-digest", added["Content-Digest"]]);
    }
    const names = components.map(([name]) => JSON.stringify(name)).join(" ");
    const params = `(${names});created=${created};keyid="${await keyId(key)}";alg="${ALGORITHM}"`;
    const base = components
      .map(([name, value]) => `${JSON.stringify(name)}: ${value}`)
      .concat(`"@signature-params": ${params}`)
      .join("\n");
    added["Signature-Input"] = `${LABEL}=${params}`;
    added["Signature"] = `${LABEL}=:${base64(await hmacSha256(key, base))}:`;
    return { base, headers: added };
  }

  function isSigned(url, origin) {
    const inApi = url.pathname === SIGNED_PREFIX || url.pathname.startsWith(SIGNED_PREFIX + "/");
    return inApi && url.origin === origin;
  }

  function removeSigningHeaders(headers) {
    for (const name of Object.keys(headers)) {
      if (SIGNING_HEADERS.includes(name.toLowerCase())) delete headers[name];
    }
  }

  function pageOrigin() {
    return globalThis.location ? globalThis.location.origin : undefined;
  }

  // `settings()` gives {key, version, newIdempotencyKeys}; `now()` the Unix time in ms; `origin`
  // is the only one whose requests are signed (the page's own, by default).
  function makeRequestInterceptor({ settings, now = () => Date.now(), origin = pageOrigin() }) {
    return async function signRequest(request) {
      const url = new URL(request.url, origin);
      if (!isSigned(url, origin)) return request;
      request.headers = request.headers || {};
      removeSigningHeaders(request.headers);
      const { key, version, newIdempotencyKeys } = settings();
      if (newIdempotencyKeys && request.method.toUpperCase() === "POST") {
        // Asked for on the page: a key of its own for each create, unless one was typed.
        if (headerValue(request.headers, "idempotency-key") === undefined) {
          request.headers["Idempotency-Key"] = globalThis.crypto.randomUUID();
        }
      }
      if (!key) return request; // sent unsigned: the 401 points the person to the key field
      if (request.body != null && typeof request.body !== "string") {
        throw new Error("only a text (JSON) body can be signed");
      }
      const body = request.body == null ? "" : request.body;
      const timestamp = now();
      if (version === 2) {
        // What fetch sends for this URL: the same parser percent-encodes path and query.
        const signed = await signV2({
          key,
          method: request.method,
          path: url.pathname,
          query: url.search.slice(1),
          headers: request.headers,
          body,
          created: Math.floor(timestamp / 1000),
        });
        Object.assign(request.headers, signed.headers);
      } else {
        request.headers["x-timestamp"] = String(timestamp);
        request.headers["x-signature"] = await signV1(key, request.method, body, String(timestamp));
      }
      return request;
    };
  }

  // Calls `refused(response)` for each 401 from the signed API, so the page can say why.
  function makeResponseInterceptor({ refused, origin = pageOrigin() }) {
    return function watchResponse(response) {
      if (response.status === 401 && isSigned(new URL(response.url, origin), origin)) {
        refused(response);
      }
      return response;
    };
  }

  // The page's key field, version choice and "keep for this tab" box. The key lives in this
  // closure; it reaches sessionStorage only while the box is ticked, and leaves it when unticked.
  function keyPanel(document, storage) {
    const keyInput = document.getElementById("signing-key");
    const versionInput = document.getElementById("signing-version");
    const remember = document.getElementById("signing-remember");
    const newIdempotencyKeys = document.getElementById("idempotency-new");
    const hint = document.getElementById("signing-hint");
    const kept = storage.getItem(STORAGE_KEY);
    if (kept) {
      keyInput.value = kept;
      remember.checked = true;
    }
    const store = () => {
      if (remember.checked && keyInput.value) storage.setItem(STORAGE_KEY, keyInput.value);
      else storage.removeItem(STORAGE_KEY);
    };
    keyInput.addEventListener("input", () => {
      store();
      hint.hidden = true;
      keyInput.classList.remove("signing__key--wanted");
    });
    remember.addEventListener("change", store);
    return {
      settings: () => ({
        key: keyInput.value,
        version: Number(versionInput.value),
        newIdempotencyKeys: newIdempotencyKeys.checked,
      }),
      // Shown when the API answers 401: the way to a signed request is this field.
      pointToKey() {
        hint.textContent = keyInput.value
          ? "The API refused the signature (401): check the signing key and version here."
          : "The API answered 401 because no signing key is set: type it here.";
        hint.hidden = false;
        keyInput.classList.add("signing__key--wanted");
        keyInput.scrollIntoView({ block: "center", behavior: "smooth" });
      },
    };
  }

  // Swagger UI plugin: the page's key field is the one place for the key, so the api-key
  // schemes' Authorize button and per-operation padlocks are not shown; and the spec is adapted
  // to this page as it loads (`asServedHere`).
  function swaggerUIPlugin() {
    const hidden = () => () => null;
    return {
      wrapComponents: { authorizeBtn: hidden, authorizeOperationBtn: hidden },
      statePlugins: {
        spec: {
          wrapActions: {
            updateSpec: (original) => (text) => original(asServedHere(text)),
          },
        },
      },
    };
  }

  // Two things Swagger UI would otherwise do with /openapi.json: show Connexion's blank server
  // URL (`servers: [{url: ""}]` at the root) as a blank entry, shown here as the page's origin;
  // and fill an optional parameter without an example of its own with its schema's example
  // (`team_id=42&name=Deadpond`, an empty page), left empty here (a null example) instead.
  function asServedHere(text) {
    let spec;
    try {
      spec = JSON.parse(text);
    } catch {
      return text; // not the JSON /openapi.json serves: left as it is
    }
    if (!spec || typeof spec !== "object") return text;
    if (Array.isArray(spec.servers)) {
      spec.servers = spec.servers.map((server) =>
        server.url ? server : { ...server, url: pageOrigin(), description: "this server" },
      );
    }
    for (const parameter of parametersOf(spec)) {
      const hasExample = "example" in parameter || "examples" in parameter;
      if (!parameter.$ref && !parameter.required && !hasExample) parameter.example = null;
    }
    return JSON.stringify(spec);
  }

  function parametersOf(spec) {
    const found = Object.values((spec.components && spec.components.parameters) || {});
    for (const pathItem of Object.values(spec.paths || {})) {
      for (const member of [pathItem, ...Object.values(pathItem)]) {
        if (member && Array.isArray(member.parameters)) found.push(...member.parameters);
      }
    }
    return found;
  }

  return {
    signedString,
    signV1,
    signV2,
    keyId,
    makeRequestInterceptor,
    makeResponseInterceptor,
    keyPanel,
    swaggerUIPlugin,
  };
});
