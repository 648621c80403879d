// Labelled form fields and the submit flow shared by the create forms:
// disable while sending, then show the result or the server's error message.

import { el, fill, notice } from "./dom.js";

let hintCount = 0;

function field(id, label, input, hint) {
  const hintEl = hint ? el("small", { class: "hint", id: `hint-${++hintCount}` }, hint) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return { field: el("div", { class: "field" }, el("label", { for: id }, label), input, hintEl), input, hint: hintEl };
}

/** A session or stream name: 1–64 letters, digits, "-", "_" or ".". */
export function nameField(id, label) {
  const input = el("input", {
    id,
    name: id,
    required: true,
    maxlength: 64,
    pattern: "[A-Za-z0-9._\\-]{1,64}",
    autocomplete: "off",
    spellcheck: false,
    title: "1–64 letters, digits, -, _ or .",
  });
  return field(id, label, input, "1–64 letters, digits, -, _ or .");
}

/** A free-text field; a textarea when `rows` is given. */
export function textField(id, label, { rows, hint, required } = {}) {
  const input = rows
    ? el("textarea", { id, name: id, rows, required })
    : el("input", { id, name: id, required });
  return field(id, label, input, hint);
}

/** A <select> with a label. */
export function selectField(id, label, hint) {
  return field(id, label, el("select", { id, name: id, required: true }), hint);
}

/** A field around any input element. */
export function customField(id, label, input, hint) {
  return field(id, label, input, hint);
}

/**
 * Runs `action` for a submitted form, with its submit button disabled.
 * `action` returns what to show on success; an error shows its message.
 */
export async function submitForm(form, flash, action) {
  const button = form.querySelector("button[type=submit]");
  if (button) button.disabled = true;
  form.setAttribute("aria-busy", "true");
  try {
    const shown = await action();
    fill(flash, shown ? notice("ok", shown) : "");
  } catch (err) {
    fill(flash, notice("error", err.message));
  } finally {
    if (button) button.disabled = false;
    form.removeAttribute("aria-busy");
  }
}
