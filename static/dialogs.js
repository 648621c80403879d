// Modal dialogs built on <dialog>: the token prompt and the confirmation
// before ending a session or stream. They keep focus inside, close on
// Escape, and never use alert/confirm/prompt.

import { el } from "./dom.js";

function openDialog(dialog, onClose) {
  document.body.append(dialog);
  dialog.addEventListener("close", () => {
    onClose(dialog.returnValue);
    dialog.remove();
  });
  dialog.showModal();
}

/**
 * Asks for the server's access token. Resolves with the token, or null when
 * the user cancels. `reason` explains why it is asked again.
 */
export function askToken(reason) {
  return new Promise((resolve) => {
    const input = el("input", {
      id: "token-input",
      name: "token",
      type: "password",
      autocomplete: "current-password",
      required: true,
      spellcheck: false,
    });
    const form = el(
      "form",
      { method: "dialog" },
      el("h2", {}, "Access token"),
      el("p", {}, "This server needs a token. It is kept for this tab only."),
      reason ? el("p", { class: "notice error", role: "alert" }, reason) : null,
      el("label", { for: "token-input" }, "Token"),
      input,
      el(
        "div",
        { class: "actions" },
        el("button", { type: "submit", value: "ok", class: "primary" }, "Use token"),
        el("button", { type: "button", onclick: () => dialog.close("cancel") }, "Cancel"),
      ),
    );
    const dialog = el("dialog", { class: "modal", "aria-labelledby": "token-title" }, form);
    form.querySelector("h2").id = "token-title";
    openDialog(dialog, (value) => resolve(value === "ok" && input.value.trim() ? input.value.trim() : null));
    input.focus();
  });
}

/** Asks the user to confirm an action. Resolves true when confirmed. */
export function confirmAction(title, message, confirmLabel) {
  return new Promise((resolve) => {
    const cancel = el("button", { type: "submit", value: "cancel" }, "Cancel");
    const dialog = el(
      "dialog",
      { class: "modal", role: "alertdialog", "aria-labelledby": "confirm-title" },
      el(
        "form",
        { method: "dialog" },
        el("h2", { id: "confirm-title" }, title),
        el("p", {}, message),
        el(
          "div",
          { class: "actions" },
          el("button", { type: "submit", value: "ok", class: "danger" }, confirmLabel),
          cancel,
        ),
      ),
    );
    openDialog(dialog, (value) => resolve(value === "ok"));
    // The safe choice has focus, so Enter alone never ends anything.
    cancel.focus();
  });
}
