// Drives the dashboard in headless Chromium against a real `sparkq run`,
// with work done both through the forms and through the CLI, the way a
// user watches workers. Each step builds on the data of the one before.

import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  api, launchBrowser, makeProject, removeDir, screenshotDir, sparkq, startServer,
} from "./support.mjs";

const XSS = "<img src=x onerror=alert(1)>";
const WAIT = { timeout: 20000 };

const CONFIG = `project:
  name: browser-check
maintenance:
  interval_seconds: 3600
script_dirs:
  - scripts
tools:
  run-bash:
    description: Execute a bash script
    task_class: FAST_SCRIPT
  llm-sonnet:
    description: Call Claude <b>Sonnet</b>
    task_class: LLM_HEAVY
`;

const SCRIPT = `#!/bin/bash
# name: deploy-site
# description: Deploy the <site> to staging
# inputs: branch
# timeout: 120
echo deploying
`;

/** Waits until the element for `selector` has text containing `text`. */
function waitText(page, selector, text) {
  return page.waitForFunction(
    ([sel, want]) => [...document.querySelectorAll(sel)].some((n) => n.textContent.includes(want)),
    [selector, text],
    WAIT,
  );
}

function tileCount(page, status) {
  return page.locator(`.tile-${status} .count`).textContent();
}

function waitTile(page, status, count) {
  return page.waitForFunction(
    ([s, c]) => document.querySelector(`.tile-${s} .count`)?.textContent === c,
    [status, String(count)],
    WAIT,
  );
}

describe("dashboard in a browser", () => {
  let dir;
  let server;
  let context;
  let page;
  let shots;
  const dialogs = [];
  const pageErrors = [];
  const ids = {};

  const go = async (hash) => {
    await page.goto(`${server.url}/${hash}`);
    await page.waitForSelector("#live[data-state=ok], #live[data-state=idle]", { ...WAIT, state: "attached" });
  };
  const shoot = (name) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

  before(async () => {
    dir = await makeProject({ "sparkq.yml": CONFIG, "scripts/deploy.sh": SCRIPT });
    server = await startServer(dir);
    shots = await screenshotDir();
    context = await launchBrowser();
    page = await context.newPage();
    page.on("dialog", (dialog) => {
      dialogs.push(`${dialog.type()}: ${dialog.message()}`);
      dialog.dismiss().catch(() => {});
    });
    page.on("pageerror", (err) => pageErrors.push(err.message));
    page.on("requestfailed", (request) => {
      const reason = request.failure()?.errorText || "";
      // A reload or navigation cancels the poll in flight; that is not a failure.
      if (reason !== "net::ERR_ABORTED") pageErrors.push(`${request.url()}: ${reason}`);
    });
    page.on("console", (message) => {
      if (message.type() === "error" && message.text().includes("Content Security Policy")) pageErrors.push(message.text());
    });
  });

  after(async () => {
    if (context) await context.close();
    if (server) await server.stop();
    await removeDir(dir);
    if (!process.env.SCREENSHOT_DIR && shots) console.log(`screenshots in ${shots}`);
  });

  it("serves the dashboard at / and /ui/ with its assets", async () => {
    for (const [pathname, type] of [["/", "text/html"], ["/ui/", "text/html"], ["/ui/app.js", "text/javascript"],
      ["/ui/style.css", "text/css"], ["/ui/favicon.svg", "image/svg+xml"]]) {
      const response = await fetch(server.url + pathname);
      assert.equal(response.status, 200, pathname);
      const contentType = response.headers.get("content-type") || "";
      assert.ok(contentType.startsWith(type), `${pathname}: ${contentType}`);
      await response.arrayBuffer();
    }
  });

  it("shows health and says what to do on an empty queue", async () => {
    await go("#/");
    await waitText(page, ".server dd", "ok");
    const version = (await api(server.url, "GET", "/health")).body.version;
    await waitText(page, ".server dd", version);
    await waitText(page, ".notice.empty", "No active streams yet");
    assert.equal(await tileCount(page, "queued"), "0");
    await go("#/tasks");
    await waitText(page, ".notice.empty", "No tasks yet");
  });

  it("creates a session through the form and shows the server's error for a duplicate", async () => {
    await go("#/sessions");
    await page.getByLabel("Name").fill("alpha");
    await page.getByLabel("Description").fill("<i>first</i> run");
    await page.getByRole("button", { name: "Create session" }).click();
    await waitText(page, ".notice.ok", "created");
    await waitText(page, "tbody th", "alpha");
    await waitText(page, "tbody td", "<i>first</i> run");
    assert.equal(await page.locator("main i").count(), 0);

    await page.getByLabel("Name").fill("alpha");
    await page.getByRole("button", { name: "Create session" }).click();
    await page.waitForSelector(".notice.error", WAIT);
    const again = await api(server.url, "POST", "/api/sessions", { name: "alpha" });
    assert.equal(again.status, 409);
    assert.equal(await page.locator(".notice.error").textContent(), again.body.error);
  });

  it("creates a stream in the session picked from the list", async () => {
    await go("#/streams");
    await page.waitForSelector("#stream-session option", { ...WAIT, state: "attached" });
    await page.locator("#stream-session").selectOption({ label: "alpha" });
    await page.getByLabel("Name").fill("build");
    await page.getByLabel("Instructions").fill("Run <b>make</b> first");
    await page.getByRole("button", { name: "Create stream" }).click();
    await waitText(page, ".notice.ok", "created");
    await waitText(page, "tbody td.instructions", "Run <b>make</b> first");
    assert.equal(await page.locator("main b").count(), 0);
    ids.build = (await api(server.url, "GET", "/api/streams/build")).body.stream.id;
  });

  it("checks the payload before sending and links to the new task", async () => {
    await go(`#/enqueue?stream_id=${ids.build}`);
    await page.waitForSelector("#enqueue-tool option", { ...WAIT, state: "attached" });
    await page.getByLabel("Tool").selectOption("run-bash");
    await waitText(page, ".hint", "FAST_SCRIPT");
    await page.getByLabel("Payload (JSON object)").fill("{bad");
    await waitText(page, "#payload-state", "not valid JSON");
    await page.getByRole("button", { name: "Enqueue task" }).click();
    await page.waitForSelector(".notice.error", WAIT);
    assert.deepEqual((await api(server.url, "GET", "/api/tasks")).body.tasks, []);

    await page.getByLabel("Payload (JSON object)").fill(JSON.stringify({ prompt: XSS }));
    await waitText(page, "#payload-state", "Valid JSON object");
    await page.getByRole("button", { name: "Enqueue task" }).click();
    const created = page.locator(".notice.ok a code");
    await created.waitFor(WAIT);
    ids.first = await created.textContent();
    assert.match(ids.first, /^tsk_[0-9a-f]{12}$/);
    const task = (await api(server.url, "GET", `/api/tasks/${ids.first}`)).body.task;
    assert.deepEqual(task.payload, { prompt: XSS });
    assert.equal(task.stream_id, ids.build);
  });

  it("fills the payload from the script index", async () => {
    await page.getByLabel("Payload (JSON object)").fill('{"branch": "main"}');
    await page.getByLabel("Script (optional)").fill("deploy-site");
    await page.waitForFunction(() => document.querySelector("#enqueue-payload").value.includes("script_path"), null, WAIT);
    const payload = JSON.parse(await page.getByLabel("Payload (JSON object)").inputValue());
    assert.equal(payload.branch, "main");
    assert.equal(path.basename(payload.script_path), "deploy.sh");
    assert.equal(await page.getByLabel("Timeout override (seconds)").inputValue(), "120");
    await waitText(page, ".hint", "Deploy the <site> to staging");
    await shoot("enqueue");
    await page.getByRole("button", { name: "Enqueue task" }).click();
    await page.waitForFunction((first) => {
      const code = document.querySelector(".notice.ok a code");
      return code && code.textContent !== first;
    }, ids.first, WAIT);
    ids.second = await page.locator(".notice.ok a code").textContent();
    const task = (await api(server.url, "GET", `/api/tasks/${ids.second}`)).body.task;
    assert.equal(task.timeout, 120);
  });

  it("lists the new tasks and their stream on the dashboard", async () => {
    await go("#/tasks");
    await waitText(page, "tbody th", ids.first);
    await waitText(page, "tbody th", ids.second);
    const row = page.locator("tbody tr", { hasText: ids.first });
    assert.match(await row.textContent(), /build.*run-bash.*queued/);
    await go("#/");
    await waitTile(page, "queued", 2);
    await waitText(page, "tbody tr", "build");
  });

  it("follows a CLI claim and complete without a reload", async () => {
    await go("#/");
    await waitTile(page, "queued", 2);
    await page.evaluate(() => {
      window.stillSamePage = true;
    });
    const claimed = JSON.parse(await sparkq(dir, "claim", "--stream", "build", "--worker-id", "w1"));
    assert.equal(claimed.id, ids.first);
    await waitTile(page, "running", 1);
    await waitTile(page, "queued", 1);
    await sparkq(dir, "complete", ids.first, "--summary", "all good", "--result", '{"files": 3}',
      "--stdout", "line one\nline two", "--stderr", "warning: <none>");
    await waitTile(page, "succeeded", 1);
    await waitTile(page, "running", 0);
    assert.equal(await page.evaluate(() => window.stillSamePage), true);
  });

  it("shows a task's detail as text, never as markup", async () => {
    await go(`#/task/${ids.first}`);
    await waitText(page, ".panel-payload pre", XSS);
    assert.equal(await page.locator(".panel-payload pre").textContent(), JSON.stringify({ prompt: XSS }, null, 2));
    assert.equal(await page.locator(".panel-summary pre").textContent(), "all good");
    assert.match(await page.locator(".panel-result pre").textContent(), /"files": 3/);
    assert.equal(await page.locator(".panel-stdout pre").textContent(), "line one\nline two");
    assert.equal(await page.locator(".panel-stderr pre").textContent(), "warning: <none>");
    assert.equal(await page.locator(".panel-instructions pre").textContent(), "Run <b>make</b> first");
    await waitText(page, ".facts dd", "w1");
    await waitText(page, ".badges", "succeeded");
    assert.equal(await page.locator("main img, main b").count(), 0);
    assert.equal(await page.getByRole("button", { name: "Requeue" }).isVisible(), true);
    await shoot("task-detail");
  });

  it("requeues a failed task from its detail", async () => {
    const claimed = JSON.parse(await sparkq(dir, "claim", "--stream", "build"));
    assert.equal(claimed.id, ids.second);
    await sparkq(dir, "fail", ids.second, "--error", "boom: <script>x</script>", "--stderr", "trace");
    await go(`#/task/${ids.second}`);
    await waitText(page, ".panel-error pre", "boom: <script>x</script>");
    await page.getByRole("button", { name: "Requeue" }).click();
    const link = page.locator(".notice.ok a code");
    await link.waitFor(WAIT);
    ids.requeued = await link.textContent();
    assert.notEqual(ids.requeued, ids.second);
    await page.locator(".notice.ok a").click();
    await page.waitForFunction((id) => location.hash === `#/task/${id}`, ids.requeued, WAIT);
    await waitText(page, ".badges", "queued");
    assert.equal(await page.getByRole("button", { name: "Requeue" }).isVisible(), false);
    const original = (await api(server.url, "GET", `/api/tasks/${ids.second}`)).body.task;
    assert.equal(original.status, "failed");
  });

  it("marks stale running tasks and tasks failed on timeout", async () => {
    await sparkq(dir, "stream", "create", "slow", "--session", "alpha", "--instructions", "long jobs");
    ids.slow = (await api(server.url, "GET", "/api/streams/slow")).body.stream.id;
    // A real auto-fail: a 1 s task reported 2 s after its claim is failed
    // by the server (TIMEOUT is refused from clients). The stale task, with
    // 2 s, is then past 1x but not 2x its timeout.
    ids.timedOut = await sparkq(dir, "enqueue", "--stream", "slow", "--tool", "llm-sonnet", "--timeout", "1");
    await sparkq(dir, "claim", "--stream", "slow");
    ids.stale = await sparkq(dir, "enqueue", "--stream", "slow", "--tool", "run-bash", "--timeout", "2");
    await sparkq(dir, "claim", "--stream", "slow");
    await new Promise((resolve) => setTimeout(resolve, 2300));
    await assert.rejects(sparkq(dir, "complete", ids.timedOut, "--summary", "too late"), /auto-failed/);
    await go(`#/tasks?stream_id=${ids.slow}`);
    await waitText(page, "tbody tr.stale", ids.stale);
    await shoot("tasks-stale");
    assert.match(await page.locator("tbody tr", { hasText: ids.stale }).textContent(), /running\s*stale/);
    assert.match(await page.locator("tbody tr", { hasText: ids.timedOut }).textContent(), /failed\s*timed out/);
  });

  it("keeps the task filter in the URL across a reload and the back button", async () => {
    await go("#/tasks");
    await waitText(page, "tbody th", ids.requeued);
    await shoot("tasks");
    await page.getByLabel("Status").selectOption("failed");
    await page.waitForFunction(() => location.hash === "#/tasks?status=failed", null, WAIT);
    await page.waitForFunction((id) => ![...document.querySelectorAll("tbody th")].some((n) => n.textContent === id),
      ids.requeued, WAIT);
    const failedRows = async () => (await page.locator("tbody th").allTextContents()).sort();
    assert.deepEqual(await failedRows(), [ids.second, ids.timedOut].sort());
    await shoot("tasks-failed");

    await page.reload();
    await page.waitForSelector("#live[data-state=ok]", WAIT);
    assert.equal(await page.getByLabel("Status").inputValue(), "failed");
    assert.deepEqual(await failedRows(), [ids.second, ids.timedOut].sort());

    await page.getByLabel("Stream").selectOption({ label: "build" });
    await page.waitForFunction((id) => location.hash === `#/tasks?stream_id=${id}&status=failed`, ids.build, WAIT);
    await page.waitForFunction(() => document.querySelectorAll("tbody th").length === 1, null, WAIT);
    assert.deepEqual(await failedRows(), [ids.second]);

    await page.goBack();
    await page.waitForFunction(() => location.hash === "#/tasks?status=failed", null, WAIT);
    await page.waitForFunction(() => document.querySelectorAll("tbody th").length === 2, null, WAIT);
    assert.equal(await page.getByLabel("Stream").inputValue(), "");
    assert.equal(await page.getByLabel("Status").inputValue(), "failed");
  });

  it("pages through a long list with links that keep the filter", async () => {
    const alpha = (await api(server.url, "GET", "/api/sessions")).body.sessions.find((x) => x.name === "alpha");
    const bulk = (await api(server.url, "POST", "/api/streams", { session_id: alpha.id, name: "bulk" })).body.stream;
    const created = [];
    for (let i = 0; i < 53; i++) {
      const answer = await api(server.url, "POST", "/api/tasks", { stream_id: bulk.id, tool_name: "run-bash", payload: { n: i } });
      assert.equal(answer.status, 201);
      created.push(answer.body.task.id);
    }
    await go(`#/tasks?stream_id=${bulk.id}&status=queued`);
    await page.waitForFunction(() => document.querySelectorAll("tbody th").length === 50, null, WAIT);
    assert.equal(await page.locator("tbody th").first().textContent(), created[52]);
    await page.getByRole("link", { name: "Older →" }).click();
    await page.waitForFunction(() => document.querySelectorAll("tbody th").length === 3, null, WAIT);
    assert.match(await page.evaluate(() => location.hash), /offset=50/);
    assert.deepEqual(await page.locator("tbody th").allTextContents(), created.slice(0, 3).reverse());
    await waitText(page, ".pager", "Showing 51–53");
    await page.goBack();
    await page.waitForFunction(() => document.querySelectorAll("tbody th").length === 50, null, WAIT);
    assert.equal(await page.getByLabel("Status").inputValue(), "queued");
  });

  it("lists the latest failures with their error on the dashboard", async () => {
    await go("#/");
    await waitText(page, ".failures summary", "boom: <script>x</script>");
    await waitText(page, ".failures summary", ids.timedOut);
    assert.equal(await page.locator("main script").count(), 0);
    await page.locator(".failures summary", { hasText: ids.second }).locator(".when").click();
    assert.equal(await page.locator(".failures details[open]").count(), 1);
    await shoot("dashboard");
    // The next refresh keeps the open detail open.
    await page.waitForFunction(() => document.querySelector("#live").textContent.includes("updated"), null, WAIT);
    const before = await page.locator("#live").textContent();
    await page.waitForFunction((b) => document.querySelector("#live").textContent !== b, before, WAIT);
    assert.equal(await page.locator(".failures details[open]").count(), 1);
  });

  it("ends a stream and a session only after confirmation", async () => {
    await sparkq(dir, "session", "create", "beta", "--description", "scratch work");
    await sparkq(dir, "stream", "create", "beta-docs", "--session", "beta");
    await go("#/streams");
    await waitText(page, "tbody th", "beta-docs");
    await shoot("streams");
    await page.getByRole("button", { name: "End stream beta-docs" }).click();
    await page.getByRole("alertdialog").waitFor(WAIT);
    await page.getByRole("button", { name: "Cancel" }).click();
    await page.getByRole("button", { name: "End stream beta-docs" }).focus();
    await page.keyboard.press("Enter");
    await page.getByRole("alertdialog").waitFor(WAIT);
    // Focus starts on Cancel, so Enter right away ends nothing; Escape closes.
    await page.keyboard.press("Escape");
    await page.getByRole("alertdialog").waitFor({ ...WAIT, state: "detached" });
    assert.equal((await api(server.url, "GET", "/api/streams/beta-docs")).body.stream.status, "active");
    await page.getByRole("button", { name: "End stream beta-docs" }).click();
    await page.getByRole("button", { name: "End stream", exact: true }).click();
    await waitText(page, ".notice.ok", "ended");
    assert.equal((await api(server.url, "GET", "/api/streams/beta-docs")).body.stream.status, "ended");

    await go("#/sessions");
    await waitText(page, "tbody th", "beta");
    await page.getByRole("button", { name: "End session beta" }).click();
    await page.getByRole("button", { name: "End session", exact: true }).click();
    await waitText(page, ".notice.ok", "ended");
    const sessions = (await api(server.url, "GET", "/api/sessions")).body.sessions;
    assert.equal(sessions.find((s) => s.name === "beta").status, "ended");
    assert.equal(sessions.find((s) => s.name === "alpha").status, "active");
    await shoot("sessions");
  });

  it("creates a session with the keyboard alone", async () => {
    await go("#/sessions");
    await page.locator("#session-name").focus();
    await page.keyboard.type("gamma");
    await page.keyboard.press("Tab");
    await page.keyboard.type("typed, not clicked");
    await page.keyboard.press("Enter");
    await waitText(page, "tbody th", "gamma");
    const sessions = (await api(server.url, "GET", "/api/sessions")).body.sessions;
    assert.equal(sessions.find((x) => x.name === "gamma").description, "typed, not clicked");
  });

  it("stops polling while the tab is hidden", async () => {
    await go("#/");
    await page.waitForSelector("#live[data-state=ok]", WAIT);
    const polled = [];
    const onRequest = (request) => {
      if (new URL(request.url()).pathname === "/stats") polled.push(request.url());
    };
    page.on("request", onRequest);
    await page.evaluate(() => {
      Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
      document.dispatchEvent(new Event("visibilitychange"));
    });
    await page.waitForSelector("#live[data-state=paused]", { ...WAIT, state: "attached" });
    polled.length = 0;
    // Longer than two refresh periods.
    await page.waitForTimeout(7000);
    assert.deepEqual(polled, []);
    const next = page.waitForRequest((r) => new URL(r.url()).pathname === "/stats", WAIT);
    await page.evaluate(() => {
      Object.defineProperty(document, "hidden", { configurable: true, get: () => false });
      document.dispatchEvent(new Event("visibilitychange"));
    });
    await next;
    page.off("request", onRequest);
  });

  it("fits an 800 px wide window", async () => {
    await page.setViewportSize({ width: 800, height: 900 });
    for (const [hash, name] of [["#/", "dashboard-800"], ["#/tasks", "tasks-800"], [`#/task/${ids.second}`, "task-detail-800"],
      ["#/streams", "streams-800"], ["#/enqueue", "enqueue-800"]]) {
      await go(hash);
      await page.waitForSelector("main h1", WAIT);
      await shoot(name);
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 800, `${hash} is ${width} px wide`);
    }
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  it("fired no dialog, no script error and no failed or blocked request", () => {
    assert.deepEqual(dialogs, []);
    assert.deepEqual(pageErrors, []);
  });
});

describe("a server that needs a token", () => {
  let dir;
  let server;
  let context;

  before(async () => {
    dir = await makeProject({ "sparkq.yml": CONFIG });
    server = await startServer(dir, { SPARKQ_TOKEN: "s3cret-token" });
  });

  after(async () => {
    if (context) await context.close();
    if (server) await server.stop();
    await removeDir(dir);
  });

  it("asks for the token once and sends it on every call", async (t) => {
    const open = await api(server.url, "GET", "/stats");
    if (open.status !== 401) {
      t.skip(`the server answers ${open.status} without a token on loopback`);
      return;
    }
    context = await launchBrowser();
    const page = await context.newPage();
    const unauthorized = [];
    page.on("request", (request) => {
      const { pathname } = new URL(request.url());
      const isApi = pathname.startsWith("/api/") || pathname === "/stats" || pathname === "/health";
      if (isApi && !request.headers().authorization) {
        unauthorized.push(request.url());
      }
    });
    const failed = [];
    page.on("requestfailed", (request) => failed.push(`${request.url()}: ${request.failure()?.errorText}`));
    await page.goto(`${server.url}/`);
    await page.getByLabel("Token", { exact: true }).waitFor(WAIT).catch((err) => {
      throw new Error(`no token prompt (${err.message.split("\n")[0]}); failed requests: ${failed.join(", ") || "none"}`);
    });
    await page.getByLabel("Token", { exact: true }).fill("wrong");
    await page.getByRole("button", { name: "Use token" }).click();
    await page.getByText("The token was refused").waitFor(WAIT);
    await page.getByLabel("Token", { exact: true }).fill("s3cret-token");
    await page.getByRole("button", { name: "Use token" }).click();
    await page.waitForSelector("#live[data-state=ok]", WAIT);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("sparkq.token")), "s3cret-token");
    unauthorized.length = 0;
    await page.goto(`${server.url}/#/sessions`);
    await page.waitForSelector("#live[data-state=ok]", WAIT);
    assert.equal(await page.locator("dialog").count(), 0);
    assert.deepEqual(unauthorized, []);

    // A new tab has no token; cancelling the prompt keeps polling from asking again.
    const other = await context.newPage();
    await other.goto(`${server.url}/`);
    await other.getByRole("button", { name: "Cancel" }).click();
    await other.waitForFunction(() => document.querySelector("#live").textContent.includes("reload the page"), null, WAIT);
    assert.equal(await other.locator("dialog").count(), 0);
    await other.close();
  });
});
