/**
 * What the React frontend does, end to end against a running service: create a team, a hero
 * in it, list the team's heroes, rename the hero (If-Match), delete it, and read it again.
 *
 *   BACKOFFICE_URL=http://127.0.0.1:8000 APP_SECRET_KEY=... npm run example
 *
 * Prints one JSON line describing each step; exits non-zero at the first unexpected answer.
 */
import createClient from "openapi-fetch";

import { signingMiddleware, type SignatureVersion } from "../src/index.js";

import type { paths } from "./schema.js";

const baseUrl = process.env.BACKOFFICE_URL ?? "http://127.0.0.1:8000";
// The same variable as the service and `backoffice call`; unset, the key `backoffice dev` accepts.
const key = process.env.APP_SECRET_KEY || "development-only-key-never-use-in-production";
const version: SignatureVersion = process.env.BACKOFFICE_SIGNATURE_VERSION === "1" ? 1 : 2;

const client = createClient<paths>({ baseUrl });
client.use(signingMiddleware({ key, version }));

function expect<T>(step: string, result: { data?: T; error?: unknown; response: Response }): T {
  if (result.data === undefined) {
    throw new Error(`${step}: ${result.response.status} ${JSON.stringify(result.error)}`);
  }
  console.log(JSON.stringify({ step, status: result.response.status }));
  return result.data;
}

const suffix = `${Date.now()}-${version}`;
const team = expect(
  "create team",
  await client.POST("/api/teams", { body: { name: `Preventers ${suffix}`, headquarters: "Sharp Tower" } }),
);
const created = await client.POST("/api/heroes", {
  body: { name: "Deadpond", secret_name: "Dive Wilson", age: 30, team_id: team.id },
});
const hero = expect("create hero", created);

const page = expect(
  "list the team's heroes",
  await client.GET("/api/teams/{team_id}/heroes", { params: { path: { team_id: team.id }, query: { limit: 10 } } }),
);
if (page.items.map((item) => item.id).join() !== String(hero.id)) {
  throw new Error(`list the team's heroes: expected only hero ${hero.id}, got ${JSON.stringify(page)}`);
}

const etag = created.response.headers.get("ETag") ?? "";
const renamed = expect(
  "rename hero",
  await client.PATCH("/api/heroes/{hero_id}", {
    params: { path: { hero_id: hero.id }, header: { "If-Match": etag } },
    body: { name: "Deadpond Prime" },
  }),
);
if (renamed.name !== "Deadpond Prime") {
  throw new Error(`rename hero: the name is still ${renamed.name}`);
}

const stale = await client.DELETE("/api/heroes/{hero_id}", {
  params: { path: { hero_id: hero.id }, header: { "If-Match": etag } },
});
if (stale.response.status !== 412) {
  throw new Error(`delete with a stale ETag: expected 412, got ${stale.response.status}`);
}
console.log(JSON.stringify({ step: "delete with a stale ETag", status: stale.response.status }));

const deleted = await client.DELETE("/api/heroes/{hero_id}", { params: { path: { hero_id: hero.id } } });
if (deleted.response.status !== 204) {
  throw new Error(`delete hero: expected 204, got ${deleted.response.status}`);
}
console.log(JSON.stringify({ step: "delete hero", status: deleted.response.status }));

const gone = await client.GET("/api/heroes/{hero_id}", { params: { path: { hero_id: hero.id } } });
if (gone.response.status !== 404 || gone.error?.type !== "/problems/not-found") {
  throw new Error(`read the deleted hero: expected 404, got ${gone.response.status}`);
}
console.log(JSON.stringify({ step: "read the deleted hero", status: gone.response.status }));
