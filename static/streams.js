// Streams: the list with session, status, task counts and an instructions
// preview (filtered by session and status in the URL), a form to create one
// in an active session, and End (after a confirmation).

import { allSessions, allStreams, post, put } from "./api.js";
import { confirmAction } from "./dialogs.js";
import {
  badge, el, fill, guarded, link, notice, preview, route, syncKeyed, syncOptions,
} from "./dom.js";
import { nameField, selectField, submitForm, textField } from "./forms.js";

export default {
  title: "Streams",
  nav: "streams",
  mount(root, params) {
    let filter = { session_id: params.get("session_id") || "", status: params.get("status") || "" };
    const problem = el("div");
    const flash = el("div", { "aria-live": "polite" }); // result of the create form
    const listFlash = el("div", { "aria-live": "polite" }); // result of End
    const body = el("tbody");
    const empty = el("div");
    const noSessions = el("div");

    const session = selectField("stream-session", "Session");
    const name = nameField("stream-name", "Name");
    const instructions = textField("stream-instructions", "Instructions", {
      rows: 3,
      hint: "What a worker reads before its first task of this stream.",
    });
    const create = el("button", { type: "submit", class: "primary" }, "Create stream");
    const form = el(
      "form",
      { class: "card form", "aria-labelledby": "new-stream" },
      el("h2", { id: "new-stream" }, "New stream"),
      noSessions,
      el("div", { class: "fields" }, session.field, name.field, instructions.field, el("div", { class: "actions" }, create)),
      flash,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitForm(form, flash, async () => {
        const data = await post("/api/streams", {
          session_id: session.input.value,
          name: name.input.value.trim(),
          instructions: instructions.input.value || undefined,
        });
        name.input.value = "";
        instructions.input.value = "";
        await refresh().catch(() => {});
        return el("span", {}, "Stream ", el("strong", {}, data.stream.name), " created. Next: ",
          link(route("enqueue", { stream_id: data.stream.id }), "enqueue a task"), ".");
      });
    });

    const filterSession = el("select", { id: "filter-session" });
    const filterStatus = el("select", { id: "filter-status" },
      el("option", { value: "" }, "any"), el("option", { value: "active" }, "active"), el("option", { value: "ended" }, "ended"));
    const filters = el(
      "form",
      { class: "filters", role: "search", "aria-label": "Filter streams" },
      el("label", { for: "filter-session" }, "Session"), filterSession,
      el("label", { for: "filter-status" }, "Status"), filterStatus,
    );
    filters.addEventListener("change", () => {
      location.hash = route("streams", { session_id: filterSession.value, status: filterStatus.value });
    });
    filters.addEventListener("submit", (event) => event.preventDefault());

    async function end(stream) {
      const ok = await confirmAction(
        `End stream ${stream.name}?`,
        `It takes no new tasks. The ${stream.counts.queued} task(s) already queued can still be claimed.`,
        "End stream",
      );
      if (!ok) return;
      try {
        await put(`/api/streams/${encodeURIComponent(stream.id)}/end`);
        fill(listFlash, notice("ok", "Stream ", el("strong", {}, stream.name), " ended."));
      } catch (err) {
        fill(listFlash, notice("error", `Could not end stream ${stream.name}: ${err.message}`));
      }
      await refresh().catch(() => {});
    }

    function row(stream) {
      const c = stream.counts;
      return el(
        "tr",
        {},
        el("th", { scope: "row" }, link(route("tasks", { stream_id: stream.id }), stream.name),
          stream.status === "active" ? null : [" ", badge(stream.status)]),
        el("td", {}, stream.session_name || stream.session_id),
        el("td", { class: "num" }, c.queued),
        el("td", { class: "num" }, c.running),
        el("td", { class: "num" }, c.succeeded),
        el("td", { class: "num" }, c.failed),
        el("td", { class: "wrap instructions", title: stream.instructions || "" },
          preview(stream.instructions, 90) || el("span", { class: "muted" }, "none")),
        el("td", {}, el("div", { class: "row-actions" },
          stream.status === "active" ? link(route("enqueue", { stream_id: stream.id }), "Enqueue") : null,
          stream.status === "active"
            ? el("button", { type: "button", class: "small", onclick: () => end(stream), "aria-label": `End stream ${stream.name}` }, "End")
            : null)),
      );
    }

    root.append(
      el("h1", {}, "Streams"),
      problem,
      el("div", { class: "split" }, form, el("section", { "aria-labelledby": "stream-list", class: "list" },
        el("div", { class: "section-head" }, el("h2", { id: "stream-list" }, "All streams"), filters),
        listFlash,
        el("div", { class: "table-wrap" },
          el("table", {},
            el("thead", {}, el("tr", {},
              ["Name", "Session", "Queued", "Running", "Succeeded", "Failed", "Instructions", ""].map((h, i) =>
                el("th", { scope: "col", class: i >= 2 && i <= 5 ? "num" : null }, h)))),
            body)),
        empty)),
    );

    async function refresh() {
      const [sessions, streams] = await guarded(problem, () => Promise.all([allSessions(), allStreams(filter.status)]));
      const active = sessions.filter((s) => s.status === "active");
      syncOptions(session.input, active.map((s) => [s.id, s.name]));
      if (!session.input.dataset.touched && filter.session_id && active.some((s) => s.id === filter.session_id)) {
        session.input.value = filter.session_id;
      }
      session.input.dataset.touched = "yes";
      create.disabled = active.length === 0;
      if (active.length) noSessions.replaceChildren();
      else if (!noSessions.childElementCount) {
        noSessions.append(notice("empty", "No active session — ", link("#/sessions", "create a session"), " first; streams belong to one."));
      }

      syncOptions(filterSession, [["", "any"], ...sessions.map((s) => [s.id, s.name])]);
      filterSession.value = filter.session_id;
      filterStatus.value = filter.status;

      const shown = streams.filter((s) => !filter.session_id || s.session_id === filter.session_id);
      syncKeyed(body, shown, (s) => s.id, row);
      body.closest("table").hidden = shown.length === 0;
      fill(empty, shown.length ? "" : notice("empty", streams.length || filter.status
        ? "No streams match this filter."
        : "No streams yet — create one with the form above."));
    }

    function update(next) {
      filter = { session_id: next.get("session_id") || "", status: next.get("status") || "" };
    }

    return { refresh, update };
  },
};
