/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** The API's origin, e.g. https://backoffice-api.example (no trailing path). */
  readonly VITE_API_URL?: string;
  /** The environment's APP_SECRET_KEY: it ships in the bundle. */
  readonly VITE_SIGNING_KEY?: string;
  /** "1" or "2" (the default): the signature version the app starts with. */
  readonly VITE_SIGNATURE_VERSION?: string;
}

interface ImportMeta {
  readonly env: ImportMetaEnv;
}
