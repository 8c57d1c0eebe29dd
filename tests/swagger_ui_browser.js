// Drives /docs in Debian's Chromium (playwright-core, never a downloaded browser) as a person
// does: types the key once, clicks "Try it out" and "Execute", reads what the page shows.
//   node swagger_ui_browser.js < task.json > report.json
// task: {url, chromium, key, wrong_key, vectors, failure_screenshot} for the checks that
// tests/test_swagger_ui_browser.py judges, or {url, chromium, screenshot} to take the README's
// picture. Like swagger_ui_driver.js it asserts nothing: it reports, and Python judges.
"use strict";

const { chromium } = require("playwright-core");
const { runSigningVectors } = require("./swagger_ui_vectors.js");

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const ACTION_MS = 30_000;

// The operation's block, as Swagger UI renders it (first one: a path may sit under two tags).
function operation(page, method, path) {
  return page
    .locator(`.opblock.opblock-${method.toLowerCase()}`)
    .filter({ has: page.locator(`.opblock-summary-path[data-path="${path}"]`) })
    .first();
}

async function tryItOut(page, method, path) {
  const block = operation(page, method, path);
  if (!(await block.locator(".opblock-body").isVisible())) {
    await block.locator(".opblock-summary").first().click();
  }
  // Once tried out, a POST's block has a second such button (its body editor's): the first
  // one is the operation's own.
  const button = block.locator("button.try-out__btn").first();
  if ((await button.textContent()).trim() === "Try it out") await button.click();
  await block.locator("button.execute").waitFor();
  return block;
}

// Clicks Execute and waits for both the network answer and the status the page then shows.
async function execute(page, block, method, path) {
  const [response] = await Promise.all([
    page.waitForResponse(
      (r) => r.request().method() === method && new URL(r.url()).pathname === path,
    ),
    block.locator("button.execute").click(),
  ]);
  const status = response.status();
  const shown = block.locator(".live-responses-table tr.response .response-col_status");
  await shown.filter({ hasText: String(status) }).waitFor();
  return {
    url: response.url(),
    status,
    body: await response.text(),
    request_headers: await response.request().allHeaders(),
  };
}

async function setKey(page, key) {
  await page.locator("#signing-key").fill(key);
}

async function checks(page, task, report) {
  const step = (name, value) => report.steps.push({ name, ...value });

  await setKey(page, task.key);
  step("stored without asking", {
    stored: await page.evaluate(() => JSON.stringify(window.sessionStorage)),
  });

  let block = await tryItOut(page, "GET", "/api/heroes");
  step("list heroes, nothing edited", await execute(page, block, "GET", "/api/heroes"));

  block = await tryItOut(page, "POST", "/api/teams");
  for (const name of ["Browser Team A", "Browser Team B"]) {
    const body = JSON.stringify({ name, headquarters: "Chromium" });
    await block.locator("textarea.body-param__text").fill(body);
    step(`create team ${name}`, await execute(page, block, "POST", "/api/teams"));
  }
  await page.locator("#idempotency-new").check();
  const third = JSON.stringify({ name: "Browser Team C", headquarters: "Chromium" });
  await block.locator("textarea.body-param__text").fill(third);
  step("create team with a new Idempotency-Key", await execute(page, block, "POST", "/api/teams"));
  await page.locator("#idempotency-new").uncheck();

  block = await tryItOut(page, "GET", "/api/heroes/{hero_id}");
  const heroPath = "/api/heroes/" + (await block.locator('input[placeholder="hero_id"]').inputValue());
  step("get the example hero", await execute(page, block, "GET", heroPath));

  // Version 2, the RFC 9421 profile, picked in the page and verified by the live server.
  await page.locator("#signing-version").selectOption("2");
  block = await tryItOut(page, "GET", "/api/heroes");
  step("list heroes, version 2", await execute(page, block, "GET", "/api/heroes"));
  block = await tryItOut(page, "POST", "/api/teams");
  await page.locator("#idempotency-new").check();
  const fourth = JSON.stringify({ name: "Browser Team V2", headquarters: "Chromium" });
  await block.locator("textarea.body-param__text").fill(fourth);
  step("create team, version 2", await execute(page, block, "POST", "/api/teams"));
  await page.locator("#idempotency-new").uncheck();
  await page.locator("#signing-version").selectOption("1");

  block = await tryItOut(page, "GET", "/api/heroes");
  await setKey(page, task.wrong_key);
  step("wrong key", {
    ...(await execute(page, block, "GET", "/api/heroes")),
    hint: await hintShown(page),
  });

  await setKey(page, "");
  step("no key", { ...(await execute(page, block, "GET", "/api/heroes")), hint: await hintShown(page) });

  await setKey(page, task.key);
  await page.locator("#signing-remember").check();
  const kept = await page.evaluate(() => JSON.stringify(window.sessionStorage));
  await page.locator("#signing-remember").uncheck();
  step("kept only while ticked", {
    ticked: kept,
    unticked: await page.evaluate(() => JSON.stringify(window.sessionStorage)),
  });

  step("vectors in the page", {
    results: await page.evaluate(runSigningVectors, { key: task.vectors.key, vectors: task.vectors.vectors }),
  });
  step("page", {
    authorize_buttons: await page.locator(".btn.authorize").count(),
    padlocks: await page.locator(".authorization__btn").count(),
    servers: await page.locator(".servers select option").allTextContents(),
  });
}

async function hintShown(page) {
  const hint = page.locator("#signing-hint");
  await hint.waitFor({ state: "visible" });
  return { visible: await hint.isVisible(), text: (await hint.textContent()).trim() };
}

async function screenshot(page, task, report) {
  const block = await tryItOut(page, "GET", "/api/heroes");
  report.steps.push({ name: "list heroes", ...(await execute(page, block, "GET", "/api/heroes")) });
  // From the key field down to the start of the response Swagger UI shows.
  const bottom = await block
    .locator(".live-responses-table tr.response")
    .evaluate((row) => row.getBoundingClientRect().top + window.scrollY + 220);
  await page.screenshot({
    path: task.screenshot,
    fullPage: true,
    clip: { x: 0, y: 0, width: 1280, height: Math.ceil(bottom) },
  });
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const task = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const origin = new URL(task.url).origin;
  const report = { steps: [], console_errors: [], foreign_requests: [], load_ms: null };
  const started = Date.now();
  const browser = await chromium.launch({ executablePath: task.chromium, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
    page.setDefaultTimeout(ACTION_MS);
    page.on("console", (message) => {
      if (message.type() === "error") report.console_errors.push(message.text());
    });
    page.on("pageerror", (error) => report.console_errors.push(String(error)));
    page.on("request", (request) => {
      const url = new URL(request.url());
      if (!["data:", "blob:"].includes(url.protocol) && url.origin !== origin) {
        report.foreign_requests.push(request.url());
      }
    });
    try {
      await page.goto(`${origin}/docs/`);
      await operation(page, "GET", "/api/heroes").waitFor();
      report.load_ms = Date.now() - started;
      report.console_errors_on_load = [...report.console_errors];
      await (task.screenshot ? screenshot(page, task, report) : checks(page, task, report));
    } catch (error) {
      report.error = String(error.stack || error);
      if (task.failure_screenshot) {
        await page.screenshot({ path: task.failure_screenshot, fullPage: true }).catch(() => {});
      }
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(report));
}

main().catch((error) => {
  process.stderr.write(String(error.stack || error));
  process.exit(1);
});
