// The console's one way to the API: the signed-in token, calls that never throw, and small DOM helpers.
// Every page talks to the public v1 API only (docs/console.md), as any other client would.

const TOKEN_KEY = "spaktok.token";

function storage() {
  try {
    return window.localStorage;
  } catch {
    return null; // storage switched off: the token lives for this page only
  }
}

let memoryToken = null;

export function token() {
  const store = storage();
  return (store && store.getItem(TOKEN_KEY)) || memoryToken;
}

export function setToken(value) {
  memoryToken = value;
  const store = storage();
  if (store) store.setItem(TOKEN_KEY, value);
}

export function clearToken() {
  memoryToken = null;
  const store = storage();
  if (store) store.removeItem(TOKEN_KEY);
}

/** The token's claims (not verified here: the API verifies every call), or null. */
export function claims(value = token()) {
  if (!value) return null;
  const parts = value.split(".");
  if (parts.length !== 3) return null;
  try {
    const text = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = Uint8Array.from(text, (c) => c.charCodeAt(0));
    const parsed = JSON.parse(new TextDecoder().decode(bytes));
    return parsed && typeof parsed.sub === "string" ? parsed : null;
  } catch {
    return null;
  }
}

export function me() {
  const c = claims();
  if (!c) return null;
  if (typeof c.exp === "number" && c.exp * 1000 < Date.now()) return null;
  return { id: c.sub, name: c.name || c.sub, roles: Array.isArray(c.roles) ? c.roles : [] };
}

export function newKey() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
  return `k-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/**
 * One call. Resolves (never rejects) to {ok, status, data, problem, message}:
 * `message` is the refusal in words (the problem's detail), for the page to show.
 */
export async function api(method, path, body, { idempotencyKey, auth = true } = {}) {
  const headers = { Accept: "application/json" };
  const bearer = token();
  if (auth && bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    return { ok: false, status: 0, data: null, problem: null, message: `The API could not be reached (${error.message}).` };
  }
  let data = null;
  try {
    const text = await response.text();
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.ok) return { ok: true, status: response.status, data, problem: null, message: "" };
  const problem = data && typeof data === "object" ? data : null;
  return { ok: false, status: response.status, data, problem, message: describeProblem(response.status, problem) };
}

export function slug(problem) {
  if (!problem || typeof problem.type !== "string") return "";
  return problem.type.split("/").pop();
}

const WORDS = {
  "private-stream": "This stream is private.",
  "followers-only": "This stream is for the broadcaster's followers only. Follow them to watch.",
  "age-restricted": "This stream is age-restricted: it is for viewers 18 and over.",
  "user-banned": "You are banned from this stream.",
  "rate-limited": "Slow down: too many requests.",
  "timed-out": "You are timed out in this chat.",
  unauthorized: "Please sign in.",
  "invalid-token": "Your sign-in has expired or is not valid. Please sign in again.",
};

function describeProblem(status, problem) {
  const kind = slug(problem);
  const detail = problem && typeof problem.detail === "string" ? problem.detail : "";
  // the API's own words first: they say what to do (e.g. until when a timeout lasts)
  if (detail) return detail.charAt(0).toUpperCase() + detail.slice(1);
  if (WORDS[kind]) return WORDS[kind];
  if (status === 404) return "Not found.";
  return `The API answered ${status}.`;
}

/** Build an element: el("button", {class: "x", "data-testid": "y", onclick: f}, "text", child). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

export function show(node, message, kind = "error") {
  if (!node) return;
  node.textContent = message;
  node.dataset.kind = kind;
  node.hidden = !message;
}

export function formatNumber(n) {
  return typeof n === "number" && Number.isFinite(n) ? String(n) : "0";
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h ? `${h}h ${m}m ${r}s` : m ? `${m}m ${r}s` : `${r}s`;
}

/** The page header: where to go, who is signed in, and sign-out. */
export function renderHeader() {
  const header = $("#site-header");
  if (!header) return;
  const user = me();
  const here = location.pathname;
  const link = (href, text) =>
    el("a", { href, "aria-current": here === href ? "page" : undefined }, text);
  const nav = el(
    "nav",
    { "aria-label": "Console" },
    link("/", "Discover"),
    link("/studio", "Studio"),
    user && user.roles.some((r) => r === "admin" || r === "moderation") ? link("/admin", "Admin") : null,
  );
  const who = el("div", { class: "who" });
  if (user) {
    who.append(
      el("span", { "data-testid": "signed-in-user" }, "Signed in as ", el("strong", {}, user.name), ` (${user.id})`),
      el(
        "button",
        {
          type: "button",
          class: "secondary",
          "data-testid": "sign-out",
          onclick: () => {
            clearToken();
            location.href = "/signin";
          },
        },
        "Sign out",
      ),
    );
  } else {
    who.append(el("a", { href: `/signin?next=${encodeURIComponent(here)}`, "data-testid": "sign-in-link" }, "Sign in"));
  }
  header.replaceChildren(el("a", { href: "/", class: "brand" }, "Spaktok Live"), nav, who);
}

/** Errors nobody caught are shown in words, never left to the console. */
export function guardErrors() {
  const bar = () => $("#page-error");
  window.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    show(bar(), `Something went wrong: ${event.reason && event.reason.message ? event.reason.message : event.reason}`);
  });
  window.addEventListener("error", (event) => {
    if (event.error) show(bar(), `Something went wrong: ${event.message}`);
  });
}

export function requireSignIn(container) {
  if (me()) return true;
  container.replaceChildren(
    el(
      "p",
      { class: "notice", "data-testid": "sign-in-required" },
      "Sign in to use this page. ",
      el("a", { href: `/signin?next=${encodeURIComponent(location.pathname)}` }, "Sign in"),
    ),
  );
  return false;
}

/** A table of `rows` (objects) showing `columns` (keys); objects are shown as JSON. */
export function table(rows, columns) {
  return el("div", { class: "table-wrap" }, el("table", {},
    el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { scope: "col" }, c)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...columns.map((c) => el("td", {}, r[c] == null ? "" : typeof r[c] === "object" ? JSON.stringify(r[c]) : String(r[c]))))))));
}
