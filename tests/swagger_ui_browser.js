// Drives /docs in Debian's Chromium (playwright-core, never a downloaded browser) as a person
// does: types the key once, clicks "Try it out" and "Execute", reads what the page shows.
//   node swagger_ui_browser.js < task.json > report.json
// task: {url, chromium, key, wrong_key, vectors, failure_screenshot} for the checks that
// tests/test_swagger_ui_browser.py judges, or {url, chromium, screenshot} to take the picture of
// /docs that the README and docs/swagger-ui.md show (and the boxes in it that vary by run).
// Like swagger_ui_driver.js it asserts nothing: it reports, and Python judges. Each response
// carries its X-Request-ID, so the test can look up in the server's log what the server
// answered (a read the browser's cache revalidated is a 304 there, a 200 here).
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
const DESKTOP = { width: 1280, height: 1100 };
// A phone: 390 CSS pixels wide, laid out as a phone browser does (a page without a viewport
// meta tag would be laid out 980 pixels wide and shrunk).
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 3 };

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
  const scrollY = () => page.evaluate(() => window.scrollY);
  // The person scrolled Execute to the top of the screen, where the response will show below.
  const button = block.locator("button.execute");
  await button.evaluate((element) => element.scrollIntoView({ block: "start" }));
  const clicked = button.click().then(scrollY);
  const [response, scrolledFrom] = await Promise.all([
    page.waitForResponse(
      (r) => r.request().method() === method && new URL(r.url()).pathname === path,
    ),
    clicked,
  ]);
  const status = response.status();
  const row = block.locator(".live-responses-table tr.response");
  await row.locator(".response-col_status").filter({ hasText: String(status) }).waitFor();
  // Time for anything the page does on a refusal (it once scrolled smoothly to the key field).
  if (status === 401) await page.waitForTimeout(1000);
  const headers = await response.allHeaders();
  return {
    url: response.url(),
    status,
    body: status === 304 ? "" : await response.text(),
    request_headers: await response.request().allHeaders(),
    request_id: headers["x-request-id"] || null,
    etag: headers.etag || null,
    shown: {
      status: (await row.locator(".response-col_status").innerText()).trim(),
      message: await shownMessage(row),
    },
    scrolled_by: (await scrollY()) - scrolledFrom,
  };
}

// The line Swagger UI writes above the body in the Details cell (for a status outside 2xx).
async function shownMessage(row) {
  const message = row.locator(".response-col_description > .renderedMarkdown");
  return (await message.count()) ? (await message.innerText()).trim() : null;
}

// Whether the 401's explanation and its status are both on screen, as the page left them (the
// status cell is as tall as the whole row, so its top edge counts).
async function refusalShown(page, block) {
  const row = block.locator(".live-responses-table tr.response");
  const message = row.locator(".response-col_description > .renderedMarkdown");
  const height = page.viewportSize().height;
  const statusBox = await row.locator(".response-col_status").boundingBox();
  const messageBox = await message.boundingBox();
  return {
    beside_the_response: await message.isVisible(),
    status_and_cause_on_screen:
      statusBox !== null &&
      messageBox !== null &&
      statusBox.y >= 0 &&
      statusBox.y < height &&
      messageBox.y >= 0 &&
      messageBox.y + messageBox.height <= height,
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

  // The same hero read three times with version 2: the browser's HTTP cache sends the second
  // and third with the If-None-Match the page did not sign. Then the ETag typed in: a 304.
  await page.locator("#signing-version").selectOption("2");
  // A hero this page has not read yet (the one above is in the browser's cache already).
  block = await tryItOut(page, "GET", "/api/heroes/{hero_id}");
  await block.locator('input[placeholder="hero_id"]').fill("2");
  for (const time of [1, 2, 3]) {
    step(`read a hero, version 2, time ${time}`, await execute(page, block, "GET", "/api/heroes/2"));
  }
  const ifNoneMatch = block.locator('input[placeholder="If-None-Match"]');
  await ifNoneMatch.fill(step0(report, "read a hero, version 2, time 1").etag);
  step("read the hero with its ETag", await execute(page, block, "GET", "/api/heroes/2"));
  await ifNoneMatch.fill("");

  for (const version of ["1", "2"]) {
    await page.locator("#signing-version").selectOption(version);
    block = await tryItOut(page, "GET", "/api/heroes");
    await setKey(page, task.wrong_key);
    step(`wrong key, version ${version}`, {
      ...(await execute(page, block, "GET", "/api/heroes")),
      hint: await hintShown(page),
      ...(await refusalShown(page, block)),
    });
  }
  await page.locator("#signing-version").selectOption("1");

  await setKey(page, "");
  step("no key", {
    ...(await execute(page, block, "GET", "/api/heroes")),
    hint: await hintShown(page),
    ...(await refusalShown(page, block)),
  });

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

function step0(report, name) {
  return report.steps.find((s) => s.name === name);
}

// Two refusals a person meets without typing a wrong key, each in a page of its own: a create
// whose signed headers something sends again (as a retrying proxy does: a replay), and a
// computer whose clock is 10 minutes fast.
async function refusalChecks(browser, task, report) {
  const step = (name, value) => report.steps.push({ name, ...value });
  let page = await openDocs(browser, { viewport: DESKTOP }, task, report);
  await setKey(page, task.key);
  let first = null;
  await page.route("**/api/teams", async (route) => {
    const headers = route.request().headers();
    first = first || headers;
    await route.continue({ headers: { ...headers, "x-timestamp": first["x-timestamp"], "x-signature": first["x-signature"] } });
  });
  const block = await tryItOut(page, "POST", "/api/teams");
  const body = JSON.stringify({ name: "Browser Team Replay", headquarters: "Chromium" });
  await block.locator("textarea.body-param__text").fill(body);
  step("create team, first", await execute(page, block, "POST", "/api/teams"));
  step("create team, its signature sent again", {
    ...(await execute(page, block, "POST", "/api/teams")),
    ...(await refusalShown(page, block)),
  });
  await page.close();

  page = await openDocs(browser, { viewport: DESKTOP }, task, report, () => {
    const realNow = Date.now.bind(Date);
    Date.now = () => realNow() + 600_000;
  });
  await setKey(page, task.key);
  for (const version of ["1", "2"]) {
    await page.locator("#signing-version").selectOption(version);
    const list = await tryItOut(page, "GET", "/api/heroes");
    step(`clock 10 minutes fast, version ${version}`, {
      ...(await execute(page, list, "GET", "/api/heroes")),
      ...(await refusalShown(page, list)),
    });
  }
  await page.close();
}

// On a phone's screen: the page is laid out at the phone's width, and nothing but a box of its
// own scrolls sideways, even with an operation open and its response shown.
async function phoneChecks(browser, task, report) {
  const page = await openDocs(browser, PHONE, task, report);
  await setKey(page, task.key);
  const block = await tryItOut(page, "GET", "/api/heroes/{hero_id}");
  const heroPath = "/api/heroes/" + (await block.locator('input[placeholder="hero_id"]').inputValue());
  const read = await execute(page, block, "GET", heroPath);
  const layout = await page.evaluate(() => ({
    inner_width: window.innerWidth,
    scroll_width: document.documentElement.scrollWidth,
    key_field_right: Math.round(document.getElementById("signing-key").getBoundingClientRect().right),
    path_font_px: parseFloat(getComputedStyle(document.querySelector(".opblock-summary-path")).fontSize),
  }));
  report.steps.push({ name: "phone", status: read.status, ...layout });
  await page.close();
}

async function openDocs(browser, options, task, report, initScript = null) {
  const origin = new URL(task.url).origin;
  const page = await browser.newPage(options);
  if (initScript) await page.addInitScript(initScript);
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
  await page.goto(`${origin}/docs/`);
  await operation(page, "GET", "/api/heroes").waitFor();
  return page;
}

async function hintShown(page) {
  const hint = page.locator("#signing-hint");
  await hint.waitFor({ state: "visible" });
  return { visible: await hint.isVisible(), text: (await hint.textContent()).trim() };
}

async function screenshot(page, task, report) {
  const block = await tryItOut(page, "GET", "/api/heroes");
  report.steps.push({ name: "list heroes", ...(await execute(page, block, "GET", "/api/heroes")) });
  // The pointer off the buttons, and time for their hover and focus transitions to end, so that
  // two pictures of the same page are the same pixels.
  await page.mouse.move(0, 0);
  await page.locator("button.execute").first().blur();
  await page.waitForTimeout(1000);
  // From the key field down to the start of the response Swagger UI shows.
  const bottom = await block
    .locator(".live-responses-table tr.response")
    .evaluate((row) => row.getBoundingClientRect().top + window.scrollY + 220);
  await page.screenshot({
    path: task.screenshot,
    fullPage: true,
    clip: { x: 0, y: 0, width: 1280, height: Math.ceil(bottom) },
  });
  // What differs from one run to the next (the server's port, the time and signature in the
  // curl line, the demo rows' timestamps), in page pixels: a comparison of two pictures leaves
  // these boxes out and holds the rest to the page as served.
  const pageBox = (locator) =>
    locator.first().evaluate((element) => {
      const box = element.getBoundingClientRect();
      return { x: box.left + window.scrollX, y: box.top + window.scrollY, width: box.width, height: box.height };
    });
  report.volatile = [
    await pageBox(page.locator(".servers select")),
    await pageBox(block.locator(".curl-command")),
    await pageBox(block.locator(".request-url")),
    await pageBox(block.locator(".live-responses-table")),
  ];
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const task = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const report = { steps: [], console_errors: [], foreign_requests: [], load_ms: null };
  const started = Date.now();
  const browser = await chromium.launch({ executablePath: task.chromium, args: CHROMIUM_ARGS });
  let page = null;
  try {
    page = await openDocs(browser, { viewport: DESKTOP }, task, report);
    report.load_ms = Date.now() - started;
    report.console_errors_on_load = [...report.console_errors];
    if (task.screenshot) {
      await screenshot(page, task, report);
    } else {
      await checks(page, task, report);
      await refusalChecks(browser, task, report);
      await phoneChecks(browser, task, report);
    }
  } catch (error) {
    report.error = String(error.stack || error);
    if (task.failure_screenshot) {
      const pages = browser.contexts().flatMap((context) => context.pages());
      const last = pages[pages.length - 1] || page;
      if (last) await last.screenshot({ path: task.failure_screenshot, fullPage: true }).catch(() => {});
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
