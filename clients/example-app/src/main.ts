/**
 * What the backoffice frontend does with the API, flow by flow, from another origin: a client
 * generated from openapi.yaml (openapi-typescript + openapi-fetch), each request signed by
 * @backoffice/signing. Every flow's result is written into the page (data-testid="flow"), where
 * a person reads it and tests/test_example_app_browser.py checks it.
 */
import { signingMiddleware, signRequest, type SignatureVersion } from "@backoffice/signing";
import createClient from "openapi-fetch";

import { API_URL, SIGNATURE_VERSION, SIGNING_KEY } from "./config";
import type { components, paths } from "./schema";

type Problem = components["schemas"]["Problem"];
/** ok; not-modified (a 304: what we hold is current); refused (a 4xx the flow asks for); error. */
type Outcome = "ok" | "not-modified" | "refused" | "error";

const flows = document.querySelector<HTMLOListElement>("#flows")!;
const done = document.querySelector<HTMLParagraphElement>("#done")!;
const versionSelect = document.querySelector<HTMLSelectElement>("#signature-version")!;
const runButton = document.querySelector<HTMLButtonElement>("#run")!;
document.querySelector("[data-testid=api-url]")!.textContent = API_URL;
versionSelect.value = String(SIGNATURE_VERSION);

function show(
  flow: string,
  outcome: Outcome,
  status: number,
  text: string,
  detail: Record<string, unknown> = {},
): void {
  const item = document.createElement("li");
  item.dataset.testid = "flow";
  item.dataset.flow = flow;
  item.dataset.outcome = outcome;
  item.dataset.status = String(status);
  item.dataset.detail = JSON.stringify(detail);
  item.textContent = `${flow} · ${status} · ${text}`;
  flows.append(item);
}

/** A flow that got an answer it did not expect: shown with the X-Request-ID to quote. */
class Unexpected extends Error {
  constructor(
    readonly flow: string,
    readonly response: Response,
    readonly problem: unknown,
  ) {
    super(`${flow}: ${response.status} ${JSON.stringify(problem)}`);
  }
}

function expectStatus<T>(
  flow: string,
  result: { data?: T; error?: unknown; response: Response },
  status: number,
): T {
  if (result.response.status !== status || result.data === undefined) {
    throw new Unexpected(flow, result.response, result.error);
  }
  return result.data;
}

function requestId(response: Response): string | null {
  // CORS: readable because the API lists X-Request-ID in Access-Control-Expose-Headers.
  return response.headers.get("X-Request-ID");
}

async function runFlows(version: SignatureVersion): Promise<void> {
  const client = createClient<paths>({ baseUrl: API_URL });
  client.use(signingMiddleware({ key: SIGNING_KEY, version }));
  const unique = `v${version} ${Date.now()}`;

  // A list, page by page: pass each next_cursor back as cursor until it is null.
  const ids: number[] = [];
  let pages = 0;
  let cursor: string | null = null;
  do {
    const query: { limit: number; cursor?: string } = { limit: 2 };
    if (cursor !== null) query.cursor = cursor;
    const page = expectStatus("list", await client.GET("/api/heroes", { params: { query } }), 200);
    pages += 1;
    ids.push(...page.items.map((hero) => hero.id));
    cursor = page.next_cursor;
  } while (cursor !== null);
  show("list", "ok", 200, `${ids.length} heroes in ${pages} pages of 2, by next_cursor`, {
    count: ids.length,
    pages,
    ids,
  });

  // A team, then its Location: a path on the API's origin, so resolved against the API's base
  // URL (this page's origin is another one), and read with a request signed by signRequest.
  const teamName = `Example team ${unique}`;
  const created = await client.POST("/api/teams", {
    body: { name: teamName, headquarters: "Vite" },
  });
  const team = expectStatus("create team", created, 201);
  const location = created.response.headers.get("Location") ?? "";
  const resolved = new URL(location, API_URL).href;
  const followed = await fetch(
    await signRequest(new Request(resolved), { key: SIGNING_KEY, version }),
  );
  const readBack = (await followed.json()) as { name?: string };
  show("create team", "ok", 201, `${team.name}: Location ${location} is ${resolved}`, {
    id: team.id,
    name: team.name,
    location,
    resolved,
    followed_status: followed.status,
    followed_name: readBack.name,
  });

  // A hero, created with an Idempotency-Key, then the same request retried with the same key
  // and the same body: the stored answer comes back, and no second hero is made.
  const idempotencyKey = crypto.randomUUID();
  const heroBody = {
    name: `Example hero ${unique}`,
    secret_name: "Vite Wilson",
    age: 30,
    team_id: team.id,
  };
  const create = () =>
    client.POST("/api/heroes", {
      params: { header: { "Idempotency-Key": idempotencyKey } },
      body: heroBody,
    });
  const first = await create();
  const hero = expectStatus("create hero", first, 201);
  show("create hero", "ok", 201, `${hero.name}, hero ${hero.id}`, {
    id: hero.id,
    location: first.response.headers.get("Location"),
  });
  const retried = await create();
  const again = expectStatus("retry the create", retried, 201);
  const replayed = retried.response.headers.get("Idempotent-Replayed");
  show("retry the create", "ok", 201, `hero ${again.id} again, Idempotent-Replayed: ${replayed}`, {
    id: again.id,
    replayed,
  });

  // A change with If-Match: the ETag just read. Sent again with that ETag, now stale: 412.
  const heroPath = { path: { hero_id: hero.id } };
  const read = await client.GET("/api/heroes/{hero_id}", { params: heroPath });
  expectStatus("read hero", read, 200);
  const etag = read.response.headers.get("ETag") ?? "";
  const patch = (age: number) =>
    client.PATCH("/api/heroes/{hero_id}", {
      params: { ...heroPath, header: { "If-Match": etag } },
      // openapi-fetch sends application/json unless told: openapi.yaml declares merge patch.
      headers: { "Content-Type": "application/merge-patch+json" },
      body: { age },
    });
  const patched = await patch(31);
  const changed = expectStatus("patch with If-Match", patched, 200);
  const newEtag = patched.response.headers.get("ETag");
  show("patch with If-Match", "ok", 200, `age ${changed.age}, ETag ${etag} → ${newEtag}`, {
    age: changed.age,
    etag_before: etag,
    etag_after: newEtag,
  });
  const stale = await patch(32);
  if (stale.response.status !== 412) {
    throw new Unexpected("patch with a stale ETag", stale.response, stale.error);
  }
  show("patch with a stale ETag", "refused", 412, (stale.error as Problem).detail ?? "", {
    type: (stale.error as Problem).type,
  });

  // The same hero read three times. The browser's HTTP cache holds it (private, no-cache, an
  // ETag) and revalidates each read with an If-None-Match it adds after the request was
  // signed; a 304 from the API comes back to the app as the 200 it cached.
  const reads: Response[] = [];
  const ages: (number | null | undefined)[] = [];
  for (let time = 1; time <= 3; time += 1) {
    const again = await client.GET("/api/heroes/{hero_id}", { params: heroPath });
    ages.push(expectStatus(`read the hero, time ${time}`, again, 200).age);
    reads.push(again.response);
  }
  const statuses = reads.map((r) => r.status);
  show("read three times", "ok", 200, `three reads: ${statuses.join(", ")}`, {
    statuses,
    request_ids: reads.map(requestId),
    ages,
  });

  // A read with the ETag we hold in If-None-Match: 304, no body. openapi-fetch counts any status
  // outside 2xx as an error and gives `error` the body's text, "" here: look at the status first.
  const current = reads[reads.length - 1]?.headers.get("ETag") ?? "";
  const unchanged = await client.GET("/api/heroes/{hero_id}", {
    params: { ...heroPath, header: { "If-None-Match": current } },
  });
  if (unchanged.response.status !== 304) {
    throw new Unexpected("not modified", unchanged.response, unchanged.error);
  }
  show("not modified", "not-modified", 304, `not modified: what we hold (${current}) is current`, {
    etag: current,
    data_is_undefined: unchanged.data === undefined,
    error: unchanged.error === undefined ? "undefined" : JSON.stringify(unchanged.error),
    request_id: requestId(unchanged.response),
  });

  // A request that fails: the problem, and its X-Request-ID to quote to whoever runs the API.
  const missing = await client.GET("/api/heroes/{hero_id}", {
    params: { path: { hero_id: 999_999_999 } },
  });
  if (missing.response.status !== 404) {
    throw new Unexpected("a failed request", missing.response, missing.error);
  }
  const problem = missing.error as Problem;
  const id = requestId(missing.response);
  show("a failed request", "refused", 404, `${problem.detail} (X-Request-ID ${id})`, {
    type: problem.type,
    request_id: id,
  });
}

async function run(): Promise<void> {
  const version = Number(versionSelect.value) === 1 ? 1 : 2;
  flows.replaceChildren();
  done.hidden = true;
  runButton.disabled = true;
  try {
    await runFlows(version);
  } catch (error) {
    if (error instanceof Unexpected) {
      show(error.flow, "error", error.response.status, error.message, {
        request_id: requestId(error.response),
      });
    } else {
      // A network or CORS failure: fetch rejects with a TypeError and no response to read.
      show("error", "error", 0, String(error));
    }
  } finally {
    done.textContent = `done with version ${version}`;
    done.dataset.version = String(version);
    done.hidden = false;
    runButton.disabled = false;
  }
}

runButton.addEventListener("click", () => void run());
