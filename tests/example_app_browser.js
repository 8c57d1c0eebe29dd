// Drives the example app (clients/example-app, built and served on its own origin) in Debian's
// Chromium (playwright-core, never a downloaded browser): for each signature version, picks it,
// clicks "Run every flow" and reads what the page shows for each flow.
//   node example_app_browser.js < task.json > report.json
// task: {app_url, api_url, chromium, versions, failure_screenshot}. It asserts nothing: it
// reports, and tests/test_example_app_browser.py judges (with the API's access log).
"use strict";

const { chromium } = require("playwright-core");

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
const FLOWS_MS = 120_000;

async function runVersion(page, version) {
  await page.locator("#signature-version").selectOption(String(version));
  await page.locator("#run").click();
  await page.locator(`[data-testid=done][data-version="${version}"]`).waitFor({ timeout: FLOWS_MS });
  return page.locator("[data-testid=flow]").evaluateAll((items) =>
    items.map((item) => ({
      flow: item.dataset.flow,
      outcome: item.dataset.outcome,
      status: Number(item.dataset.status),
      detail: JSON.parse(item.dataset.detail),
      text: item.textContent,
    })),
  );
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const task = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const report = { runs: {}, console_errors: [], api_requests: [], other_requests: [] };
  const browser = await chromium.launch({ executablePath: task.chromium, args: CHROMIUM_ARGS });
  let page = null;
  try {
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.setDefaultTimeout(30_000);
    page.on("console", (message) => {
      if (message.type() === "error") report.console_errors.push(message.text());
    });
    page.on("pageerror", (error) => report.console_errors.push(String(error)));
    const api = new URL(task.api_url).origin;
    const app = new URL(task.app_url).origin;
    page.on("request", (request) => {
      const origin = new URL(request.url()).origin;
      if (origin === api) {
        report.api_requests.push(`${request.method()} ${request.url()}`);
      } else if (origin !== app && !request.url().startsWith("data:")) {
        report.other_requests.push(request.url());
      }
    });
    await page.goto(task.app_url);
    report.page_origin = await page.evaluate(() => window.location.origin);
    report.api_url_shown = await page.locator("[data-testid=api-url]").textContent();
    for (const version of task.versions) {
      report.runs[version] = await runVersion(page, version);
    }
  } catch (error) {
    report.error = String(error.stack || error);
    if (page && task.failure_screenshot) {
      await page.screenshot({ path: task.failure_screenshot, fullPage: true }).catch(() => {});
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
