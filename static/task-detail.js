// One task: status, timings, payload, result, error, stdout and stderr in
// scrollable panels, and the stream's instructions. Finished tasks can be
// requeued. Refreshes change only the text that changed, so a panel keeps
// its scroll position while the user reads it.

import { get, post } from "./api.js";
import {
  el, fill, formatDuration, formatTime, guarded, link, notice, pretty, route, setText,
} from "./dom.js";
import { runTime, statusBadges } from "./status.js";

const FACTS = [
  ["stream", "Stream"], ["tool", "Tool"], ["class", "Task class"], ["timeout", "Timeout"],
  ["attempts", "Attempts"], ["worker", "Worker"], ["created", "Created"], ["started", "Started"],
  ["finished", "Finished"], ["duration", "Duration"], ["updated", "Updated"],
];

function panel(id, title) {
  const pre = el("pre", { class: "panel", tabindex: 0, "aria-labelledby": `${id}-title` });
  const box = el("section", { class: `panel-box panel-${id}`, hidden: true }, el("h2", { id: `${id}-title` }, title), pre);
  return { box, pre };
}

// Empty outcome panels are hidden; payload and instructions always show.
function setPanel(pre, text, keep = false) {
  const empty = text === null || text === undefined || text === "";
  pre.classList.toggle("empty", empty);
  pre.parentElement.hidden = empty && !keep;
  setText(pre, empty ? "none" : text);
}

function timeText(iso) {
  return iso ? formatTime(iso) : "—";
}

export default {
  title: "Task",
  nav: "tasks",
  mount(root, _params, id) {
    const problem = el("div");
    const flash = el("div", { "aria-live": "polite" });
    const heading = el("h1", {}, "Task ", el("code", {}, id));
    const badges = el("span", { class: "badges-slot" });
    const back = link(route("tasks"), "← Tasks");
    const requeue = el("button", { type: "button", class: "primary", hidden: true }, "Requeue");
    const facts = Object.fromEntries(FACTS.map(([key]) => [key, el("dd")]));
    const panels = {
      payload: panel("payload", "Payload"),
      summary: panel("summary", "Result summary"),
      result: panel("result", "Result"),
      error: panel("error", "Error"),
      stdout: panel("stdout", "Stdout"),
      stderr: panel("stderr", "Stderr"),
      instructions: panel("instructions", "Stream instructions"),
    };

    requeue.addEventListener("click", async () => {
      requeue.disabled = true;
      try {
        const data = await post(`/api/tasks/${encodeURIComponent(id)}/requeue`);
        fill(flash, notice("ok", "Requeued as ", link(route(`task/${data.task.id}`), el("code", {}, data.task.id)),
          " — a new queued task; this one stays as it was."));
      } catch (err) {
        fill(flash, notice("error", `Could not requeue: ${err.message}`));
      } finally {
        requeue.disabled = false;
      }
    });

    root.append(
      el("p", { class: "crumbs" }, back),
      el("div", { class: "section-head" }, el("div", { class: "title" }, heading, badges), requeue),
      problem,
      flash,
      el("dl", { class: "facts card" }, FACTS.map(([key, label]) => el("div", {}, el("dt", {}, label), facts[key]))),
      el("div", { class: "panels" }, Object.values(panels).map((p) => p.box)),
    );

    let streamLink = null;
    let badgeSig = "";

    async function refresh() {
      const data = await guarded(problem, () => get(`/api/tasks/${encodeURIComponent(id)}`));
      const task = data.task;
      let stream = null;
      try {
        stream = (await get(`/api/streams/${encodeURIComponent(task.stream_id)}`)).stream;
      } catch (err) {
        setPanel(panels.instructions.pre, `could not load the stream: ${err.message}`, true);
      }

      const now = Date.now();
      const sig = JSON.stringify([task.status, task.error_type, task.started_at, now > Date.parse(task.started_at) + task.timeout * 1000]);
      if (sig !== badgeSig) {
        badgeSig = sig;
        fill(badges, statusBadges(task, now));
      }
      back.href = route("tasks", { stream_id: task.stream_id });
      requeue.hidden = !(task.status === "succeeded" || task.status === "failed");

      const streamName = stream ? stream.name : task.stream_id;
      if (!streamLink || streamLink.textContent !== streamName) {
        streamLink = link(route("tasks", { stream_id: task.stream_id }), streamName);
        fill(facts.stream, streamLink);
      }
      setText(facts.tool, task.tool_name);
      setText(facts.class, task.task_class || "—");
      setText(facts.timeout, `${task.timeout} s`);
      setText(facts.attempts, task.attempts);
      setText(facts.worker, task.worker_id || "—");
      setText(facts.created, timeText(task.created_at));
      setText(facts.started, timeText(task.started_at));
      setText(facts.finished, timeText(task.finished_at));
      const ms = runTime(task);
      setText(facts.duration, ms === null ? "—" : task.status === "running" ? `${formatDuration(ms)} so far` : formatDuration(ms));
      setText(facts.updated, timeText(task.updated_at));
      for (const key of ["created", "started", "finished", "updated"]) {
        const iso = task[`${key}_at`];
        if (iso) facts[key].title = iso;
      }

      setPanel(panels.payload.pre, pretty(task.payload), true);
      setPanel(panels.summary.pre, task.result_summary);
      setPanel(panels.result.pre, pretty(task.result));
      setPanel(panels.error.pre, [task.error_type, task.error].filter(Boolean).join(": "));
      setPanel(panels.stdout.pre, task.stdout);
      setPanel(panels.stderr.pre, task.stderr);
      if (stream) setPanel(panels.instructions.pre, stream.instructions, true);
      document.title = `Task ${task.id} · SparkQ`;
    }

    return { refresh };
  },
};
