// Sessions: the list with status and stream counts, a form to create one,
// and End (after a confirmation).

import { allSessions, post, put } from "./api.js";
import { confirmAction } from "./dialogs.js";
import { badge, el, fill, guarded, link, notice, preview, route, syncKeyed, timeEl } from "./dom.js";
import { nameField, textField, submitForm } from "./forms.js";

export default {
  title: "Sessions",
  nav: "sessions",
  mount(root) {
    const problem = el("div");
    const flash = el("div", { "aria-live": "polite" }); // result of the create form
    const listFlash = el("div", { "aria-live": "polite" }); // result of End
    const body = el("tbody");
    const empty = el("div");

    const name = nameField("session-name", "Name");
    const description = textField("session-description", "Description");
    const form = el(
      "form",
      { class: "card form", "aria-labelledby": "new-session" },
      el("h2", { id: "new-session" }, "New session"),
      el("div", { class: "fields" },
        name.field,
        description.field,
        el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Create session"))),
      flash,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitForm(form, flash, async () => {
        const data = await post("/api/sessions", {
          name: name.input.value.trim(),
          description: description.input.value.trim() || undefined,
        });
        form.reset();
        await refresh().catch(() => {});
        return el("span", {}, "Session ", el("strong", {}, data.session.name), " created. Next: ",
          link(route("streams", { session_id: data.session.id }), "add a stream to it"), ".");
      });
    });

    async function end(session) {
      const ok = await confirmAction(
        `End session ${session.name}?`,
        "Its streams end too and take no new tasks. Tasks already queued can still be claimed.",
        "End session",
      );
      if (!ok) return;
      try {
        await put(`/api/sessions/${encodeURIComponent(session.id)}/end`);
        fill(listFlash, notice("ok", "Session ", el("strong", {}, session.name), " ended."));
      } catch (err) {
        fill(listFlash, notice("error", `Could not end session ${session.name}: ${err.message}`));
      }
      await refresh().catch(() => {});
    }

    function row(session) {
      return el(
        "tr",
        {},
        el("th", { scope: "row" }, session.name),
        el("td", { class: "wrap", title: session.description || "" }, preview(session.description, 120) || el("span", { class: "muted" }, "—")),
        el("td", {}, badge(session.status)),
        el("td", { class: "num" }, link(route("streams", { session_id: session.id }), String(session.stream_count))),
        el("td", {}, timeEl(session.created_at)),
        el("td", {}, timeEl(session.ended_at)),
        el("td", {}, el("div", { class: "row-actions" }, session.status === "active"
          ? el("button", { type: "button", class: "small", onclick: () => end(session), "aria-label": `End session ${session.name}` }, "End")
          : null)),
      );
    }

    root.append(
      el("h1", {}, "Sessions"),
      problem,
      el("div", { class: "split" }, form, el("section", { "aria-labelledby": "all-sessions", class: "list" },
        el("h2", { id: "all-sessions" }, "All sessions"),
        listFlash,
        el("div", { class: "table-wrap" },
          el("table", {},
            el("thead", {}, el("tr", {},
              ["Name", "Description", "Status", "Streams", "Created", "Ended", ""].map((h) =>
                el("th", { scope: "col", class: h === "Streams" ? "num" : null }, h)))),
            body)),
        empty)),
    );

    async function refresh() {
      const sessions = await guarded(problem, () => allSessions());
      syncKeyed(body, sessions, (s) => s.id, row);
      body.closest("table").hidden = sessions.length === 0;
      if (sessions.length) empty.replaceChildren();
      else if (!empty.childElementCount) {
        empty.append(notice("empty", "No sessions yet — create one with the form above, then add streams to it."));
      }
    }

    return { refresh };
  },
};
