// Dashboard: server health, task counts by status, the active streams with
// their queues, and the latest failures. Updates in place on every refresh.

import { allStreams, get } from "./api.js";
import {
  between, el, formatDuration, formatTime, guarded, link, notice, route, setText, syncKeyed, timeEl,
} from "./dom.js";
import { statusBadges } from "./status.js";

const STATUSES = ["queued", "running", "succeeded", "failed"];
const FAILURES_SHOWN = 8;

function streamRow(stream) {
  return el(
    "tr",
    {},
    el("th", { scope: "row" }, link(route("tasks", { stream_id: stream.id }), stream.name)),
    el("td", {}, stream.session_name || stream.session_id),
    el("td", { class: "num" }, stream.counts.queued),
    el("td", { class: "num" }, stream.counts.running),
    el("td", {
      class: "num age",
      title: stream.oldest_queued_at || "",
      dataset: stream.oldest_queued_at ? { since: stream.oldest_queued_at } : null,
    }, "—"),
  );
}

function failureItem(task, streamName) {
  const error = [task.error_type, task.error].filter(Boolean).join(": ") || "no error message";
  return el(
    "li",
    {},
    el(
      "details",
      {},
      el(
        "summary",
        {},
        el("span", { class: "when" }, timeEl(task.finished_at)),
        link(route(`task/${task.id}`), el("code", {}, task.id)),
        el("span", { class: "muted" }, ` ${streamName} · ${task.tool_name} `),
        statusBadges(task),
        el("span", { class: "error-line" }, error),
      ),
      el("pre", { class: "panel" }, error),
    ),
  );
}

export default {
  title: "Dashboard",
  nav: "dashboard",
  mount(root) {
    const problem = el("div");
    let startedAt = NaN;
    const health = {
      status: el("dd"), version: el("dd"), uptime: el("dd"), started: el("dd"),
    };
    const counts = Object.fromEntries(STATUSES.map((s) => [s, el("span", { class: "count" }, "–")]));
    const sessionsCount = el("span", { class: "count" }, "–");
    const streamsCount = el("span", { class: "count" }, "–");
    const streamsBody = el("tbody");
    const streamsEmpty = el("div");
    const failures = el("ul", { class: "failures" });
    const failuresEmpty = el("div");

    root.append(
      el("h1", {}, "Dashboard"),
      problem,
      el(
        "section",
        { class: "cards", "aria-label": "Overview" },
        el(
          "div",
          { class: "card server" },
          el("h2", {}, "Server"),
          el("dl", {},
            el("dt", {}, "Status"), health.status,
            el("dt", {}, "Version"), health.version,
            el("dt", {}, "Uptime"), health.uptime,
            el("dt", {}, "Started"), health.started),
        ),
        el(
          "div",
          { class: "card" },
          el("h2", {}, "Tasks"),
          el("ul", { class: "tiles" },
            STATUSES.map((s) => el("li", {}, el("a", { href: route("tasks", { status: s }), class: `tile tile-${s}` },
              counts[s], el("span", { class: "label" }, s))))),
        ),
        el(
          "div",
          { class: "card" },
          el("h2", {}, "Work"),
          el("ul", { class: "tiles" },
            el("li", {}, el("a", { href: "#/sessions", class: "tile" }, sessionsCount, el("span", { class: "label" }, "sessions"))),
            el("li", {}, el("a", { href: "#/streams", class: "tile" }, streamsCount, el("span", { class: "label" }, "streams")))),
        ),
      ),
      el(
        "section",
        { "aria-labelledby": "active-streams" },
        el("h2", { id: "active-streams" }, "Active streams"),
        el("div", { class: "table-wrap" },
          el("table", {},
            el("thead", {}, el("tr", {},
              el("th", { scope: "col" }, "Stream"), el("th", { scope: "col" }, "Session"),
              el("th", { scope: "col", class: "num" }, "Queued"), el("th", { scope: "col", class: "num" }, "Running"),
              el("th", { scope: "col", class: "num" }, "Oldest queued"))),
            streamsBody)),
        streamsEmpty,
      ),
      el(
        "section",
        { "aria-labelledby": "latest-failures" },
        el("h2", { id: "latest-failures" }, "Latest failures"),
        failures,
        failuresEmpty,
      ),
    );

    function showEmpty(slot, isEmpty, ...message) {
      if (!isEmpty) slot.replaceChildren();
      else if (!slot.childElementCount) slot.append(notice("empty", ...message));
    }

    async function refresh() {
      const [h, stats, streams, failed] = await guarded(problem, () => Promise.all([
        get("/health"),
        get("/stats"),
        allStreams(),
        get(`/api/tasks?status=failed&limit=${FAILURES_SHOWN}`),
      ]));
      setText(health.status, h.status);
      health.status.className = h.status === "ok" ? "ok" : "bad";
      setText(health.version, h.version);
      setText(health.uptime, formatDuration(h.uptime_seconds * 1000));
      // Start time = server time minus uptime; whole seconds jitter by one,
      // so it only moves when the server restarted.
      const started = Date.parse(h.timestamp) - h.uptime_seconds * 1000;
      if (Number.isFinite(started) && !(Math.abs(started - startedAt) < 2000)) {
        startedAt = started;
        const iso = new Date(started).toISOString().replace(/\.\d+Z$/, "Z");
        setText(health.started, formatTime(iso));
        health.started.title = iso;
      }
      for (const s of STATUSES) setText(counts[s], stats.tasks[s]);
      setText(sessionsCount, stats.sessions);
      setText(streamsCount, stats.streams);

      const active = streams.filter((s) => s.status === "active");
      syncKeyed(streamsBody, active, (s) => s.id, streamRow);
      // Ages tick in place, so rows are rebuilt only when their data changed.
      for (const cell of streamsBody.querySelectorAll("td.age[data-since]")) {
        setText(cell, formatDuration(between(cell.dataset.since)));
      }
      streamsBody.closest("table").hidden = active.length === 0;
      showEmpty(streamsEmpty, active.length === 0, "No active streams yet — ",
        link("#/streams", "create one"), " and then ", link("#/enqueue", "enqueue a task"), ".");

      const names = new Map(streams.map((s) => [s.id, s.name]));
      const tasks = failed.tasks || [];
      syncKeyed(failures, tasks, (t) => t.id, (t) => failureItem(t, names.get(t.stream_id) || t.stream_id));
      showEmpty(failuresEmpty, tasks.length === 0, "No failed tasks. Failures show up here with their error.");
    }

    return { refresh };
  },
};
