// Tasks: the list filtered by stream and status, with paging. The filters
// and the page live in the URL (#/tasks?stream_id=…&status=…&offset=…), so
// a view can be bookmarked, reloaded, and left with the back button.

import { allStreams, get, withQuery } from "./api.js";
import {
  between, el, fill, formatDuration, guarded, link, notice, route, setText, syncKeyed, syncOptions, timeEl,
} from "./dom.js";
import { isStale, runTime, statusBadges } from "./status.js";

const STATUSES = ["queued", "running", "succeeded", "failed"];
const PAGE_SIZE = 50;

function readFilter(params) {
  const offset = Number.parseInt(params.get("offset") || "0", 10);
  return {
    stream_id: params.get("stream_id") || "",
    status: STATUSES.includes(params.get("status")) ? params.get("status") : "",
    offset: Number.isFinite(offset) && offset > 0 ? offset : 0,
  };
}

export default {
  title: "Tasks",
  nav: "tasks",
  mount(root, params) {
    let filter = readFilter(params);
    const problem = el("div");
    const body = el("tbody");
    const empty = el("div");
    const pager = el("nav", { class: "pager", "aria-label": "Pages of tasks" });

    const streamSelect = el("select", { id: "filter-stream", name: "stream_id" });
    const statusSelect = el("select", { id: "filter-status", name: "status" },
      el("option", { value: "" }, "any"), STATUSES.map((s) => el("option", { value: s }, s)));
    const clear = el("a", { href: route("tasks"), class: "clear" }, "Clear filters");
    const filters = el(
      "form",
      { class: "filters", role: "search", "aria-label": "Filter tasks" },
      el("label", { for: "filter-stream" }, "Stream"), streamSelect,
      el("label", { for: "filter-status" }, "Status"), statusSelect,
      clear,
    );
    filters.addEventListener("change", () => {
      // A new filter starts again at the first page.
      location.hash = route("tasks", { stream_id: streamSelect.value, status: statusSelect.value });
    });
    filters.addEventListener("submit", (event) => event.preventDefault());

    const enqueueLink = link(route("enqueue"), "Enqueue a task");
    root.append(
      el("div", { class: "section-head" }, el("h1", {}, "Tasks"), enqueueLink),
      problem,
      filters,
      el("div", { class: "table-wrap" },
        el("table", { class: "tasks" },
          el("thead", {}, el("tr", {},
            ["ID", "Stream", "Tool", "Status", "Created", "Started", "Finished", "Duration"].map((h) =>
              el("th", { scope: "col", class: h === "Duration" ? "num" : null }, h)))),
          body)),
      empty,
      pager,
    );

    function row(task, names, now) {
      const ms = runTime(task);
      const running = task.status === "running";
      return el(
        "tr",
        { class: isStale(task, now) ? "stale" : null },
        el("th", { scope: "row" }, link(route(`task/${task.id}`), el("code", {}, task.id))),
        el("td", {}, names.get(task.stream_id) || task.stream_id),
        el("td", {}, task.tool_name),
        el("td", {}, statusBadges(task, now)),
        el("td", {}, timeEl(task.created_at)),
        el("td", {}, timeEl(task.started_at)),
        el("td", {}, timeEl(task.finished_at)),
        el("td", {
          class: running ? "num so-far" : "num",
          title: running ? "still running" : null,
          dataset: running ? { started: task.started_at } : null,
        }, ms === null ? "—" : formatDuration(ms)),
      );
    }

    function showPager(count, hasMore) {
      const from = count ? filter.offset + 1 : 0;
      const prev = filter.offset > 0
        ? link(route("tasks", { ...filter, offset: Math.max(0, filter.offset - PAGE_SIZE) || "" }), "← Newer")
        : el("span", { class: "muted" }, "← Newer");
      const next = hasMore
        ? link(route("tasks", { ...filter, offset: filter.offset + PAGE_SIZE }), "Older →")
        : el("span", { class: "muted" }, "Older →");
      const text = `Showing ${from}–${filter.offset + count}`;
      if (pager.dataset.sig === `${text}|${hasMore}|${filter.offset}`) return;
      pager.dataset.sig = `${text}|${hasMore}|${filter.offset}`;
      fill(pager, prev, el("span", {}, text), next);
      pager.hidden = !hasMore && filter.offset === 0;
    }

    async function refresh() {
      const path = withQuery("/api/tasks", {
        stream_id: filter.stream_id,
        status: filter.status,
        limit: PAGE_SIZE + 1,
        offset: filter.offset,
      });
      const [streams, data] = await guarded(problem, () => Promise.all([allStreams(), get(path)]));
      syncOptions(streamSelect, [["", "any"], ...streams.map((s) => [s.id, s.name])]);
      streamSelect.value = filter.stream_id;
      statusSelect.value = filter.status;
      clear.hidden = !filter.stream_id && !filter.status;
      enqueueLink.href = route("enqueue", { stream_id: filter.stream_id });

      const names = new Map(streams.map((s) => [s.id, s.name]));
      const all = data.tasks || [];
      const tasks = all.slice(0, PAGE_SIZE);
      const now = Date.now();
      syncKeyed(body, tasks, (t) => t.id, (t) => row(t, names, now),
        (t) => JSON.stringify([t, names.get(t.stream_id), isStale(t, now)]));
      // Running times tick in place, so a focused row is not rebuilt.
      for (const cell of body.querySelectorAll("td.so-far")) {
        setText(cell, formatDuration(between(cell.dataset.started)));
      }
      body.closest("table").hidden = tasks.length === 0;
      showPager(tasks.length, all.length > PAGE_SIZE);

      let message = null;
      if (tasks.length === 0 && filter.offset > 0) {
        message = notice("empty", "No tasks on this page. ", link(route("tasks", { ...filter, offset: "" }), "Go to the first page"), ".");
      } else if (tasks.length === 0 && (filter.stream_id || filter.status)) {
        message = notice("empty", "No tasks match these filters. ", link(route("tasks"), "Show all tasks"), " or ",
          link(route("enqueue", { stream_id: filter.stream_id }), "enqueue one"), ".");
      } else if (tasks.length === 0) {
        message = notice("empty", streams.length
          ? el("span", {}, "No tasks yet — ", link("#/enqueue", "enqueue one"), ".")
          : el("span", {}, "No tasks yet — ", link("#/streams", "create a stream"), ", then enqueue into it."));
      }
      if (empty.textContent !== (message ? message.textContent : "")) fill(empty, message);
    }

    function update(next) {
      filter = readFilter(next);
    }

    return { refresh, update };
  },
};
