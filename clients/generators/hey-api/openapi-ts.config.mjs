// @hey-api/openapi-ts's configuration for tests/test_generated_clients.py and the README:
// its default plugins (types, SDK) and fetch client, with `.js` imports as Node's ES modules
// need them (read from the NodeNext tsconfig beside this folder).
import { defineConfig } from "@hey-api/openapi-ts";

export default defineConfig({
  input: "../../../openapi.yaml",
  output: { path: "client", tsConfigPath: "../tsconfig.json" },
});
