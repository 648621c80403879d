// Helpers for the browser tests: a real `sparkq run --port 0` in a temp
// directory, the `sparkq` CLI against the same database, and headless
// Chromium through playwright-core.
//
// Environment: SPARKQ_BIN (default target/debug/sparkq), SCREENSHOT_DIR
// (default a new temp directory), CHROMIUM_BIN (default /usr/bin/chromium).

import { execFile, spawn } from "node:child_process";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { chromium } from "playwright-core";

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The sparkq binary: $SPARKQ_BIN, else target/debug/sparkq in the repo. */
export const sparkqBin = path.resolve(repoRoot, process.env.SPARKQ_BIN || "target/debug/sparkq");

/** Makes a temp directory holding `files` ({relative path: text}). */
export async function makeProject(files) {
  const dir = await mkdtemp(path.join(os.tmpdir(), "sparkq-browser-"));
  for (const [name, text] of Object.entries(files)) {
    const file = path.join(dir, name);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, text);
  }
  return dir;
}

export async function removeDir(dir) {
  if (dir) await rm(dir, { recursive: true, force: true });
}

/**
 * Starts `sparkq run --port 0` in `dir` and resolves once it printed its URL
 * (the first stdout line). `stop()` ends it and waits for the exit.
 */
export function startServer(dir, env = {}) {
  if (!existsSync(sparkqBin)) {
    throw new Error(`sparkq binary not found at ${sparkqBin}; build it first or set SPARKQ_BIN`);
  }
  const child = spawn(sparkqBin, ["run", "--port", "0"], {
    cwd: dir,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr = (stderr + chunk).slice(-8000);
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const ready = new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`sparkq run printed no URL within 20 s\n${stderr}`)), 20000);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const newline = out.indexOf("\n");
      if (newline < 0) return;
      clearTimeout(timer);
      const match = out.slice(0, newline).match(/https?:\/\/\S+/);
      if (match) resolve(match[0].replace(/\/$/, ""));
      else reject(new Error(`first stdout line is not a URL: ${out.slice(0, newline)}`));
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`sparkq run exited with ${code} before printing its URL\n${stderr}`));
    });
  });
  return ready.then((url) => ({
    url,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10000);
      await exited;
      clearTimeout(timer);
    },
  }), async (err) => {
    child.kill("SIGKILL");
    throw err;
  });
}

/** Runs the sparkq CLI in `dir`; resolves with its trimmed stdout. */
export async function sparkq(dir, ...args) {
  try {
    const { stdout } = await run(sparkqBin, args, { cwd: dir, timeout: 30000 });
    return stdout.trim();
  } catch (err) {
    throw new Error(`sparkq ${args.join(" ")} failed (${err.code}): ${err.stderr || err.message}`);
  }
}

/** Calls the API from the test itself (not the page). */
export async function api(url, method, pathname, body, headers = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url + pathname, init);
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
}

/**
 * Launches Debian's Chromium headless with a fresh profile. Resolves with
 * the browser context; closing it ends the browser.
 */
export async function launchBrowser() {
  const profile = await mkdtemp(path.join(os.tmpdir(), "sparkq-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM_BIN || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  context.on("close", () => {
    removeDir(profile).catch(() => {});
  });
  return context;
}

/** Where screenshots go: $SCREENSHOT_DIR, else a new temp directory. */
export async function screenshotDir() {
  const dir = process.env.SCREENSHOT_DIR || (await mkdtemp(path.join(os.tmpdir(), "sparkq-screens-")));
  await mkdir(dir, { recursive: true });
  return dir;
}
