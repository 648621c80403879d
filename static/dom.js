// Small DOM and formatting helpers shared by every page.
// Text from the server is only ever set with textContent (through `el` and
// `setText`), never parsed as HTML.

/**
 * Creates an element. `attrs` keys are properties or attributes; `on*`
 * functions become listeners. Children are nodes or strings (as text).
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      node.className = value;
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else if (key in node && typeof value !== "string") {
      node[key] = value;
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces all children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** Sets text only when it changed, so scroll position and selection survive. */
export function setText(node, text) {
  const value = text === null || text === undefined ? "" : String(text);
  if (node.textContent !== value) node.textContent = value;
}

/**
 * Makes `parent`'s children match `items`, reusing the child of each key
 * whose signature did not change. Rows that stay the same are not touched,
 * so open details, focus and scroll stay where the user left them.
 */
export function syncKeyed(parent, items, keyOf, render, signatureOf = (item) => JSON.stringify(item)) {
  const old = new Map();
  for (const child of [...parent.children]) {
    if (child.dataset.key === undefined) child.remove();
    else old.set(child.dataset.key, child);
  }
  items.forEach((item, index) => {
    const key = String(keyOf(item));
    const sig = signatureOf(item);
    let node = old.get(key);
    if (!node || node.dataset.sig !== sig) {
      const fresh = render(item);
      fresh.dataset.key = key;
      fresh.dataset.sig = sig;
      if (node) node.replaceWith(fresh);
      node = fresh;
    }
    old.delete(key);
    if (parent.children[index] !== node) parent.insertBefore(node, parent.children[index] || null);
  });
  for (const node of old.values()) node.remove();
}

/** Keeps a <select>'s options in line with `options` ([value, label]) without losing the choice. */
export function syncOptions(select, options) {
  const current = select.value;
  const sig = JSON.stringify(options);
  if (select.dataset.sig === sig) return;
  select.dataset.sig = sig;
  fill(select, options.map(([value, label]) => el("option", { value }, label)));
  if (options.some(([value]) => value === current)) select.value = current;
}

const pad = (n) => String(n).padStart(2, "0");

/** Local date and time, without the date when it is today. */
export function formatTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const today = new Date();
  if (d.toDateString() === today.toDateString()) return time;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** A <time> element showing local time, with the exact UTC value on hover. */
export function timeEl(iso) {
  return el("time", iso ? { datetime: iso, title: iso } : {}, formatTime(iso));
}

/** "850 ms", "42 s", "3 min 5 s", "2 h 10 min", "3 d 4 h". */
export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** Milliseconds between two RFC 3339 times (the second defaulting to now). */
export function between(startIso, endIso) {
  if (!startIso) return null;
  const end = endIso ? Date.parse(endIso) : Date.now();
  return end - Date.parse(startIso);
}

/** Cuts text to `max` characters with an ellipsis. */
export function preview(text, max = 80) {
  if (!text) return "";
  const line = String(text).replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** Pretty JSON for objects, the text itself for strings. */
export function pretty(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

/** A message block for errors ("error") or hints ("empty"). */
export function notice(kind, ...children) {
  return el("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : null }, ...children);
}

/** A link inside the app. */
export function link(hash, ...children) {
  return el("a", { href: hash }, ...children);
}

/** Builds a hash route with query parameters, leaving out empty ones. */
export function route(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  const text = query.toString();
  return `#/${path}${text ? `?${text}` : ""}`;
}

/**
 * Runs a page's loader and shows its failure in `slot` (cleared on success).
 * The error is thrown on, so the live indicator reports it too.
 */
export async function guarded(slot, load) {
  try {
    const result = await load();
    if (slot.childElementCount) slot.replaceChildren();
    return result;
  } catch (err) {
    if (slot.textContent !== err.message) fill(slot, notice("error", err.message));
    throw err;
  }
}

/** A status badge; `kind` picks its colour. */
export function badge(text, kind = text) {
  return el("span", { class: `badge badge-${kind}` }, text);
}
