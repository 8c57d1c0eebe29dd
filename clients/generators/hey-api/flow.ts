/**
 * The live flow through the client @hey-api/openapi-ts generates (its fetch client), signed by
 * a request interceptor.
 *
 *   node dist/flow.js BASE_URL KEY   (compiled beside the generated `client/` folder)
 *
 * Prints one JSON line per step; exits non-zero at the first unexpected answer.
 */
import { createHmac } from "node:crypto";

import {
  createHero,
  deleteHero,
  getHero,
  listHeroes,
  updateHero,
  createTeam,
  type Hero,
  type Problem,
} from "./client/index.js";
import { client } from "./client/client.gen.js";

const [baseUrl = "", key = ""] = process.argv.slice(2);
let last = 0;

client.setConfig({ baseUrl });
// Version 1 signs `{METHOD}|{body}|{x-timestamp}` over the bytes about to be sent.
client.interceptors.request.use(async (request) => {
  const body = Buffer.from(await request.clone().arrayBuffer());
  // Each signature of a POST, PATCH or DELETE is accepted once: never reuse a millisecond.
  last = Math.max(last + 1, Date.now());
  const timestamp = String(last);
  const signed = Buffer.concat([Buffer.from(`${request.method}|`), body, Buffer.from(`|${timestamp}`)]);
  request.headers.set("x-timestamp", timestamp);
  request.headers.set("x-signature", createHmac("sha256", key).update(signed).digest("hex"));
  return request;
});

function say(step: string, status: number, extra: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ step, status, ...extra }));
}

function fail(step: string, response: Response, body: unknown): never {
  throw new Error(`${step}: ${response.status} ${JSON.stringify(body)}`);
}

function ok<T>(step: string, result: { data?: T; error?: unknown; response: Response }, status: number): T {
  if (result.data === undefined || result.response.status !== status) {
    fail(step, result.response, result.error);
  }
  say(step, status);
  return result.data;
}

function problem(step: string, result: { error?: Problem; response: Response }, status: number): void {
  if (result.error === undefined || result.response.status !== status) {
    fail(step, result.response, result.error);
  }
  say(step, status, { detail: result.error.detail });
}

const teamBody = { name: `Preventers ${Date.now()}`, headquarters: "Sharp Tower" };
const team = ok("create team", await createTeam({ body: teamBody }), 201);
const heroes: Hero[] = [];
for (const name of ["Deadpond", "Rusty-Man"]) {
  const body = { name, secret_name: "Dive Wilson", age: 30, team_id: team.id };
  heroes.push(ok("create hero", await createHero({ body }), 201));
}

const seen: number[] = [];
let pages = 0;
let cursor: string | null = null;
do {
  const query: { team_id: number; limit: number; cursor?: string } = { team_id: team.id, limit: 1 };
  if (cursor !== null) {
    query.cursor = cursor;
  }
  const page = await listHeroes({ query });
  if (page.data === undefined) {
    fail("page through heroes", page.response, page.error);
  }
  pages += 1;
  seen.push(...page.data.items.map((hero) => hero.id));
  cursor = page.data.next_cursor;
} while (cursor !== null);
if (seen.join() !== heroes.map((hero) => hero.id).join()) {
  throw new Error(`page through heroes: got ${seen.join()}`);
}
say("page through heroes", 200, { pages });

const heroId = heroes[0]?.id ?? 0;
const read = await getHero({ path: { hero_id: heroId } });
ok("get hero", read, 200);
const etag = read.response.headers.get("ETag") ?? "";
// A 304 is no error and has no body: neither `data` nor a Problem.
const unchanged = await getHero({ path: { hero_id: heroId }, headers: { "If-None-Match": etag } });
if (unchanged.response.status !== 304 || unchanged.data !== undefined) {
  fail("get unchanged hero", unchanged.response, unchanged.data);
}
say("get unchanged hero", 304);

const patched = await updateHero({
  path: { hero_id: heroId },
  headers: { "If-Match": etag },
  body: { name: "Deadpond Prime", age: null },
});
const renamed = ok("patch hero", patched, 200);
if (renamed.name !== "Deadpond Prime" || renamed.age !== null) {
  throw new Error(`patch hero: got ${JSON.stringify(renamed)}`);
}

const deleted = await deleteHero({
  path: { hero_id: heroId },
  headers: { "If-Match": patched.response.headers.get("ETag") ?? "" },
});
if (deleted.response.status !== 204) {
  fail("delete hero", deleted.response, deleted.error);
}
say("delete hero", 204);

problem("get deleted hero", await getHero({ path: { hero_id: heroId } }), 404);
problem("create team again", await createTeam({ body: teamBody }), 409);
