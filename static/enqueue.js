// Enqueue: pick a stream and a tool, write the payload (checked as a JSON
// object before sending), optionally override the timeout, or pick a script
// from the index to fill the payload. Links to the new task when done.

import { allStreams, get, post } from "./api.js";
import { el, fill, guarded, link, notice, route, setText, syncOptions } from "./dom.js";
import { customField, selectField, submitForm } from "./forms.js";

/** Parses the payload text: {value} for a JSON object, {error} otherwise. */
export function parsePayload(text) {
  if (!text.trim()) return { value: {} };
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: `Payload is not valid JSON: ${err.message}` };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { error: 'Payload must be a JSON object, e.g. {"prompt": "…"}' };
  }
  return { value };
}

export default {
  title: "Enqueue",
  nav: "enqueue",
  mount(root, params) {
    const problem = el("div");
    const flash = el("div", { "aria-live": "polite" });
    const setup = el("div");
    let tools = [];
    let scripts = new Map(); // the text offered in the picker → entry

    const stream = selectField("enqueue-stream", "Stream");
    const tool = selectField("enqueue-tool", "Tool", " ");
    const scriptInput = el("input", {
      id: "enqueue-script", name: "script", list: "script-options", autocomplete: "off", spellcheck: false,
      placeholder: "Type to search the script index",
    });
    const scriptOptions = el("datalist", { id: "script-options" });
    const script = customField("enqueue-script", "Script (optional)", scriptInput, "Picking a script puts its path into the payload.");
    const payloadInput = el("textarea", {
      id: "enqueue-payload", name: "payload", rows: 10, spellcheck: false, class: "code",
      placeholder: '{"prompt": "Summarise the changes in src/"}',
    });
    const payload = customField("enqueue-payload", "Payload (JSON object)", payloadInput);
    const payloadState = el("p", { class: "validity", id: "payload-state", "aria-live": "polite" });
    const format = el("button", { type: "button", class: "small" }, "Format JSON");
    const timeoutInput = el("input", { id: "enqueue-timeout", name: "timeout", type: "number", min: 1, step: 1, inputmode: "numeric" });
    const timeout = customField("enqueue-timeout", "Timeout override (seconds)", timeoutInput, "Empty uses the tool's timeout.");
    const submit = el("button", { type: "submit", class: "primary" }, "Enqueue task");

    const form = el(
      "form",
      { class: "card form", "aria-labelledby": "enqueue-title", novalidate: true },
      el("h2", { id: "enqueue-title" }, "New task"),
      setup,
      el("div", { class: "row" }, stream.field, tool.field),
      script.field,
      scriptOptions,
      payload.field,
      el("div", { class: "payload-tools" }, payloadState, format),
      timeout.field,
      el("div", { class: "actions" }, submit),
      flash,
    );
    root.append(el("h1", {}, "Enqueue"), problem, form);

    function checkPayload() {
      const parsed = parsePayload(payloadInput.value);
      payloadInput.setAttribute("aria-invalid", parsed.error ? "true" : "false");
      payloadState.className = `validity ${parsed.error ? "bad" : "good"}`;
      setText(payloadState, parsed.error || (payloadInput.value.trim() ? "Valid JSON object" : "Empty payload: {} will be sent"));
      return parsed;
    }
    payloadInput.setAttribute("aria-describedby", "payload-state");
    payloadInput.addEventListener("input", checkPayload);
    format.addEventListener("click", () => {
      const parsed = checkPayload();
      if (!parsed.error && payloadInput.value.trim()) payloadInput.value = JSON.stringify(parsed.value, null, 2);
    });

    function describeTool() {
      const t = tools.find((x) => x.name === tool.input.value);
      setText(tool.hint, t ? `${t.task_class} · ${t.timeout} s timeout${t.description ? ` — ${t.description}` : ""}` : "");
      timeoutInput.placeholder = t ? `${t.timeout} (from the tool)` : "";
    }
    tool.input.addEventListener("change", describeTool);

    function pickScript() {
      const entry = scripts.get(scriptInput.value);
      if (!entry) return;
      const current = parsePayload(payloadInput.value);
      const base = current.error ? {} : current.value;
      payloadInput.value = JSON.stringify({ ...base, script_path: entry.path }, null, 2);
      if (entry.timeout && !timeoutInput.value) timeoutInput.value = entry.timeout;
      const details = [entry.description, entry.inputs && `inputs: ${entry.inputs}`, entry.outputs && `outputs: ${entry.outputs}`,
        entry.task_class && `class: ${entry.task_class}`, entry.timeout && `timeout: ${entry.timeout} s`].filter(Boolean);
      setText(script.hint, `${entry.path}${details.length ? ` — ${details.join(" · ")}` : ""}`);
      checkPayload();
    }
    scriptInput.addEventListener("input", pickScript);
    scriptInput.addEventListener("change", pickScript);

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const parsed = checkPayload();
      if (parsed.error) {
        payloadInput.focus();
        fill(flash, notice("error", parsed.error));
        return;
      }
      if (!stream.input.value || !tool.input.value) {
        fill(flash, notice("error", "Pick a stream and a tool first."));
        return;
      }
      let seconds;
      if (timeoutInput.value.trim()) {
        seconds = Number(timeoutInput.value);
        if (!Number.isInteger(seconds) || seconds < 1) {
          timeoutInput.focus();
          fill(flash, notice("error", "The timeout must be a whole number of seconds, at least 1."));
          return;
        }
      }
      submitForm(form, flash, async () => {
        const body = { stream_id: stream.input.value, tool_name: tool.input.value, payload: parsed.value };
        if (seconds !== undefined) body.timeout = seconds;
        const data = await post("/api/tasks", body);
        const name = stream.input.selectedOptions[0]?.textContent || "";
        return el("span", {}, "Task ", link(route(`task/${data.task.id}`), el("code", {}, data.task.id)),
          ` queued in ${name}. `, link(route("tasks", { stream_id: data.task.stream_id }), "See the stream's tasks"), ".");
      });
    });

    async function load() {
      const [streams, toolData, scriptData] = await guarded(problem, () => Promise.all([
        allStreams("active"), get("/api/tools"), get("/api/scripts/index"),
      ]));
      tools = toolData.tools || [];
      syncOptions(stream.input, streams.map((s) => [s.id, `${s.name} (${s.session_name || s.session_id})`]));
      const wanted = params.get("stream_id");
      if (wanted && streams.some((s) => s.id === wanted)) stream.input.value = wanted;
      syncOptions(tool.input, tools.map((t) => [t.name, t.name]));
      if (params.get("tool") && tools.some((t) => t.name === params.get("tool"))) tool.input.value = params.get("tool");
      describeTool();

      const entries = scriptData.scripts || [];
      const counts = new Map();
      for (const s of entries) counts.set(s.name, (counts.get(s.name) || 0) + 1);
      scripts = new Map(entries.map((s) => [counts.get(s.name) > 1 ? s.path : s.name, s]));
      fill(scriptOptions, [...scripts].map(([text, s]) => el("option", { value: text }, s.description || s.path)));
      script.field.hidden = entries.length === 0;

      const missing = [];
      if (!streams.length) missing.push(el("span", {}, "No active streams yet — ", link("#/streams", "create one"), " first. "));
      if (!tools.length) missing.push(el("span", {}, "No tools are configured — add some under tools: in sparkq.yml, then run sparkq reload."));
      fill(setup, missing.length ? notice("empty", missing) : "");
      submit.disabled = missing.length > 0;
      checkPayload();
    }

    load().catch(() => {});
    return {};
  },
};
