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
      if (header.toLowerCase() === name) return joined(value).trim();
    }
    return undefined;
  }

  // swagger-client splits a response header's value at its commas ("Thu, 03 Dec ..." becomes
  // two items): put it back together.
  function joined(value) {
    return value !== null && typeof value === "object" && typeof value.join === "function"
      ? value.join(", ")
      : String(value);
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

  // Calls `refused(hint)` for each 401 from the signed API, with `refusalHint`'s sentence.
  function makeResponseInterceptor({ refused, origin = pageOrigin(), now = () => Date.now() }) {
    return function watchResponse(response) {
      if (response.status === 401 && isSigned(new URL(response.url, origin), origin)) {
        refused(refusalHint(response.text, headerValue(response.headers || {}, "date"), now()));
      }
      return response;
    };
  }

  // What a 401 from the API means for the person on this page, from its problem+json `detail`
  // (README, "What is checked, in order"): the cause first, then what to do. `date` is the
  // response's Date header, to measure this computer's clock against the server's.
  function refusalHint(problemText, date, now) {
    let detail = "";
    try {
      detail = String(JSON.parse(problemText).detail || "");
    } catch {
      // not problem+json: the generic sentence below
    }
    for (const [pattern, hint] of REFUSALS) {
      const match = pattern.exec(detail);
      if (match) return hint(match, clockSkew(date, now));
    }
    return `The API refused the signature (401): ${detail || "no detail given"}.`;
  }

  // "is 601 s ahead of", "is 30 s behind", or without a Date header "differs from".
  function clockSkew(date, now) {
    const server = Date.parse(date || "");
    if (Number.isNaN(server)) return "differs from";
    const seconds = Math.round((now - server) / 1000);
    return seconds >= 0 ? `is ${seconds} s ahead of` : `is ${-seconds} s behind`;
  }

  const WHERE_THE_KEY_GOES = "Signing key at the top of the page";
  const REFUSALS = [
    [
      /^the request is not signed/,
      () => `No signing key is set: type this server's APP_SECRET_KEY into ${WHERE_THE_KEY_GOES}.`,
    ],
    [
      /^keyid names no key/,
      () =>
        "Wrong key: this server holds no key with the signature's keyid. " +
        `Check ${WHERE_THE_KEY_GOES}.`,
    ],
    [
      /^(Signature|x-signature) does not match/,
      () =>
        "Wrong key: the signature does not match, so the key is not this server's " +
        `(or the request changed after signing). Check ${WHERE_THE_KEY_GOES}.`,
    ],
    [
      /^this signature was already used/,
      () =>
        "Replay: this very signature was already used, and the server accepts each one once. " +
        "Execute again: the page signs afresh.",
    ],
    [
      /is outside the accepted window/,
      (_, skew) =>
        `Clock skew: this computer's clock ${skew} the server's, outside the window ` +
        "the server accepts. Set the clock right, then Execute again.",
    ],
    [
      /^x-timestamp looks like Unix time in seconds/,
      () => "Clock: x-timestamp was sent in seconds; the server wants milliseconds.",
    ],
    [
      /^the signature must cover "([^"]+)"/,
      (match) =>
        `Uncovered header: the request carries ${match[1]}, which the signature does not ` +
        "cover: something added it after the page signed (the browser or a proxy).",
    ],
    [
      /^signature version 1 is no longer accepted/,
      () => "Version: this server accepts version 2 only: pick version 2 in Signature at the top.",
    ],
  ];

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
      // Shown when the API answers 401: the cause, and the key field marked. The page does not
      // scroll: the same sentence stands beside the response, where the person is looking.
      pointToKey(cause) {
        hint.textContent = cause;
        hint.hidden = false;
        keyInput.classList.add("signing__key--wanted");
      },
    };
  }

  // Swagger UI plugin: the page's key field is the one place for the key, so the api-key
  // schemes' Authorize button and per-operation padlocks are not shown; the spec is adapted to
  // this page as it loads (`asServedHere`); and a response says what its status means.
  function swaggerUIPlugin({ origin = pageOrigin(), now = () => Date.now() } = {}) {
    const hidden = () => () => null;
    return {
      wrapComponents: {
        authorizeBtn: hidden,
        authorizeOperationBtn: hidden,
        liveResponse: (Original, system) => (props) =>
          system.React.createElement(Original, {
            ...props,
            response: explained(props.response, origin, now),
          }),
      },
      statePlugins: {
        spec: {
          wrapActions: {
            updateSpec: (original) => (text) => original(asServedHere(text)),
          },
        },
      },
    };
  }

  // Swagger UI writes one line above a response's body in its Details cell, for a status outside
  // 2xx only, as "<error name>: <status text>" ("Error: Not Modified"). That line now says what
  // the status means: for a 304, that the copy named in If-None-Match is current (no error);
  // for a 401 from this server's API, why it was refused, beside the problem it explains.
  function explained(response, origin, now) {
    if (!response || typeof response.get !== "function") return response;
    const status = response.get("status");
    if (status === 304) {
      return response.merge({ error: true, name: "", message: NOT_MODIFIED });
    }
    const url = response.get("url");
    if (status === 401 && url && isSigned(new URL(url, origin), origin)) {
      const headers = response.get("headers");
      const date = headers && typeof headers.get === "function" ? headers.get("date") : undefined;
      const hint = refusalHint(response.get("text"), date && joined(date), now());
      return response.merge({ error: true, name: "", message: `**Unauthorized.** ${hint}` });
    }
    return response;
  }

  const NOT_MODIFIED =
    "**Not Modified.** What you hold is current: the ETag you sent in If-None-Match is still " +
    "this resource's, so the server sends no body.";

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
    refusalHint,
    swaggerUIPlugin,
  };
});
