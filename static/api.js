// Talks to the SparkQ HTTP API. Every call goes through `request`, which adds
// the bearer token when there is one, asks for it once on a 401, and turns
// error bodies ({"error", "status"}) into ApiError with the server's message.

import { askToken } from "./dialogs.js";

const TOKEN_KEY = "sparkq.token";

/** An error answer from the server, or a network failure (status 0). */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage can be disabled; the token then lasts until the next reload.
  }
  memoryToken = token;
}

let memoryToken = "";
// One prompt at a time: parallel calls that all get 401 wait for the same answer.
let pendingToken = null;
// After the user cancels the prompt, polling must not ask again every few seconds.
let declined = false;

async function send(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = getToken() || memoryToken;
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, cache: "no-store" };
  if (method === "POST" || method === "PUT") {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body ?? {});
  }
  try {
    return await fetch(path, init);
  } catch (err) {
    throw new ApiError(`cannot reach the server: ${err.message}`, 0);
  }
}

async function readError(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const data = await response.json();
    if (data && typeof data.error === "string" && data.error) message = data.error;
  } catch {
    // A body that is not JSON keeps the status line as the message.
  }
  return new ApiError(message, response.status);
}

/**
 * Sends one API call and returns the parsed JSON body, or null for 204.
 * POST and PUT always carry a JSON body ({} when none is given).
 */
export async function request(method, path, body) {
  let response = await send(method, path, body);
  while (response.status === 401) {
    const problem = await readError(response);
    if (declined) throw new ApiError("this server needs an access token; reload the page to enter it", 401);
    if (!pendingToken) {
      const hadToken = Boolean(getToken() || memoryToken);
      const reason = hadToken ? `The token was refused: ${problem.message}` : "";
      pendingToken = askToken(reason).finally(() => {
        pendingToken = null;
      });
    }
    const token = await pendingToken;
    if (!token) {
      declined = true;
      throw problem;
    }
    setToken(token);
    response = await send(method, path, body);
  }
  if (!response.ok) throw await readError(response);
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(`the server sent a body that is not JSON (${response.status})`, response.status);
  }
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);
export const put = (path, body) => request("PUT", path, body);

/** Builds a path with query parameters, leaving out empty ones. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** All streams (up to the API's maximum page), for name look-ups and pickers. */
export async function allStreams(status) {
  const data = await get(withQuery("/api/streams", { status, limit: 1000 }));
  return data.streams || [];
}

/** All sessions (up to the API's maximum page). */
export async function allSessions(status) {
  const data = await get(withQuery("/api/sessions", { status, limit: 1000 }));
  return data.sessions || [];
}
