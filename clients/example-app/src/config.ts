/**
 * Where the API is and the key that signs for it: fixed when the app is built (Vite writes each
 * `import.meta.env.VITE_*` into the bundle). The key is therefore readable by anyone who can load
 * the page: it is the environment's key, not a user's secret (README, "Threat model").
 */
export const API_URL: string = import.meta.env.VITE_API_URL ?? "http://127.0.0.1:8000";

// `npm run dev` may run without a key: the development key, which only `backoffice dev` accepts.
// A build without VITE_SIGNING_KEY stops in vite.config.ts.
export const SIGNING_KEY: string =
  import.meta.env.VITE_SIGNING_KEY ?? "development-only-key-never-use-in-production";

export const SIGNATURE_VERSION: 1 | 2 = import.meta.env.VITE_SIGNATURE_VERSION === "1" ? 1 : 2;
