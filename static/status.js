// How a task's state is shown: the status badge plus the stale (past 1x its
// timeout while running) and timed-out (auto-failed at 2x) marks.

import { badge, between, el } from "./dom.js";

/** True for a running task that has run longer than its timeout. */
export function isStale(task, now = Date.now()) {
  if (task.status !== "running" || !task.started_at || !task.timeout) return false;
  return Date.parse(task.started_at) + task.timeout * 1000 < now;
}

/** True for a task that the server failed because it ran past 2x its timeout. */
export function isTimedOut(task) {
  return task.status === "failed" && task.error_type === "TIMEOUT";
}

/** The badges for a task's status, with its stale or timed-out mark. */
export function statusBadges(task, now = Date.now()) {
  const marks = [badge(task.status)];
  if (isStale(task, now)) {
    marks.push(badge("stale", "stale"));
    marks[1].title = `running longer than its ${task.timeout} s timeout`;
  }
  if (isTimedOut(task)) {
    marks.push(badge("timed out", "timeout"));
    marks[1].title = "failed by the server after running past 2x its timeout";
  }
  return el("span", { class: "badges" }, marks);
}

/** Run time: finished minus started, or so far for a running task. */
export function runTime(task) {
  if (!task.started_at) return null;
  return between(task.started_at, task.finished_at);
}
