// Runs the shared signing vectors through the page's request-signing script: in Node
// (tests/swagger_ui_driver.js) and, unchanged, inside Chromium (tests/swagger_ui_browser.js
// hands this function to page.evaluate). Self-contained for that reason: it finds the script
// as the page does, at globalThis.requestSigning, and reports what it computed.
async function runSigningVectors({ key, vectors }) {
  const signing = globalThis.requestSigning;
  const results = [];
  for (const v of vectors) {
    if (v.version === 1) {
      results.push({
        signed_string: signing.signedString(v.method, v.body, v.x_timestamp),
        x_signature: await signing.signV1(key, v.method, v.body, v.x_timestamp),
      });
    } else {
      const signed = await signing.signV2({
        key,
        method: v.method,
        path: v.path,
        query: v.query,
        headers: v.headers,
        body: v.body,
        created: v.created,
      });
      results.push({ signature_base: signed.base, headers: signed.headers });
    }
  }
  return results;
}

if (typeof module === "object" && module.exports) module.exports = { runSigningVectors };
