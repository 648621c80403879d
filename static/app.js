// The dashboard shell: hash routing (#/page?filters, so reload and the back
// button keep the view), the nav highlight, and the refresh loop that polls
// the current page every few seconds while the tab is visible.

import { el, fill, formatTime, notice } from "./dom.js";
import dashboard from "./dashboard.js";
import sessions from "./sessions.js";
import streams from "./streams.js";
import tasks from "./tasks.js";
import taskDetail from "./task-detail.js";
import enqueue from "./enqueue.js";

const REFRESH_MS = 3000;

const pages = { dashboard, sessions, streams, tasks, task: taskDetail, enqueue };

const root = document.getElementById("app");
const live = document.getElementById("live");

let current = null; // { name, page, view, arg }
let timer = null;
const busy = new WeakSet(); // views with a refresh in flight
const again = new WeakSet(); // views asked to refresh while one was in flight

function parseHash() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = hash.split("?", 2);
  const [name = "", arg = ""] = path.split("/").map(decodeURIComponent);
  return { name: name || "dashboard", arg, params: new URLSearchParams(query) };
}

function showLive(state, text) {
  live.dataset.state = state;
  live.textContent = text;
}

async function refresh() {
  if (!current || !current.view.refresh) return;
  const view = current.view;
  if (busy.has(view)) {
    // A filter changed mid-request: run once more when it is done.
    again.add(view);
    return;
  }
  busy.add(view);
  try {
    await view.refresh();
    if (current && current.view === view) showLive("ok", `Live · updated ${formatTime(new Date().toISOString())}`);
  } catch (err) {
    if (current && current.view === view) showLive("error", `Not updated: ${err.message}`);
  } finally {
    busy.delete(view);
  }
  if (again.delete(view) && current && current.view === view) await refresh();
}

function schedule() {
  clearTimeout(timer);
  timer = null;
  if (document.hidden || !current || !current.view.refresh) return;
  timer = setTimeout(async () => {
    await refresh();
    schedule();
  }, REFRESH_MS);
}

async function navigate() {
  const { name, arg, params } = parseHash();
  const page = pages[name];
  for (const a of document.querySelectorAll("nav a")) {
    const active = a.dataset.nav === (page ? page.nav : "");
    if (active) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  // A new filter on the same page keeps the page (and the focus in its form).
  if (current && page && current.page === page && current.arg === arg && current.view.update) {
    current.view.update(params);
    await refresh();
    schedule();
    return;
  }
  current = null;
  clearTimeout(timer);
  if (!page) {
    document.title = "Not found · SparkQ";
    fill(root, el("h1", { tabindex: -1 }, "Page not found"),
      notice("empty", "There is no page here. ", el("a", { href: "#/" }, "Go to the dashboard"), "."));
    return;
  }
  document.title = `${page.title} · SparkQ`;
  const container = el("div", { class: `page page-${name}` });
  fill(root, container);
  const view = page.mount(container, params, arg) || {};
  current = { name, page, view, arg };
  showLive(view.refresh ? "loading" : "idle", view.refresh ? "Loading…" : "");
  const heading = container.querySelector("h1");
  if (heading && navigated) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
  navigated = true;
  await refresh();
  schedule();
}

let navigated = false;

window.addEventListener("hashchange", navigate);
document.addEventListener("visibilitychange", () => {
  if (document.hidden) {
    clearTimeout(timer);
    if (current && current.view.refresh) showLive("paused", "Paused while the tab is hidden");
  } else {
    refresh().then(schedule);
  }
});

navigate();
