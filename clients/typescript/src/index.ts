/**
 * @backoffice/signing: signs requests to the Operations Backoffice API, version 1 or 2 (an
 * RFC 9421 HTTP Message Signatures profile), with WebCrypto, in browsers and in Node 20+.
 *
 *   import { signingMiddleware } from "@backoffice/signing";
 *   client.use(signingMiddleware({ key: import.meta.env.VITE_SIGNING_KEY }));
 */
export {
  BOUND_HEADERS,
  contentDigest,
  keyId,
  sign,
  signatureBase,
  signedBytes,
  signingMiddleware,
  signRequest,
  version2Headers,
} from "./signing.js";
export type {
  SignatureVersion,
  SigningMiddleware,
  SigningOptions,
  Version1Input,
  Version2Input,
} from "./signing.js";
