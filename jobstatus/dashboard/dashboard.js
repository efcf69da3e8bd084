// The jobstatus dashboard: lists and follows jobs through the service's own routes.
//
// Guarantees kept by this file:
// - Every value that comes from a job or from the server is put in the page as text
//   (Text nodes, textContent); nothing here ever assigns innerHTML or builds markup from data.
// - The API key lives in sessionStorage only and travels as the x-api-key header; it is never
//   put in a URL, a link, the clipboard or the console.
// - Every API URL is computed from the page's own location, so the page works wherever the
//   routes are mounted (under any prefix).
// - A hidden tab sends nothing: polling stops on visibilitychange and resumes when shown.

const root = document.documentElement;
const ALLOW_CANCEL = root.dataset.allowCancel === "true";
const MAX_WAIT = Number(root.dataset.maxWait) > 0 ? Number(root.dataset.maxWait) : 30;

// -- how the page follows jobs (see the docs' "Dashboard" page for the measurements) --------
// Default: one cheap list probe every PROBE_MS (the newest write in the window), and a
// long-poll (?wait= with If-None-Match) for at most MAX_FOLLOWED non-final jobs on screen: the
// job open in the job view first, then the newest rows. "?live=list" turns the long-polls off,
// "?live=waits" follows every non-final row; both are there to measure the choice.
const LIVE = new URLSearchParams(location.search).get("live") || "auto";
const PROBE_MS = LIVE === "list" ? 1000 : 2000;
const MAX_FOLLOWED = LIVE === "list" ? 0 : LIVE === "waits" ? Infinity : 3;
const WAIT_SECONDS = Math.max(1, Math.min(25, Math.floor(MAX_WAIT)));
// After a wait ran out, the next one is asked for this much later, so that a request waiting
// for a free connection gets it (the job's ETag catches any change made meanwhile).
const YIELD_MS = 200;
// The window is re-read this often even when the probe sees no write (jobs age out of it).
const FULL_REFRESH_MS = 60000;
// The counts are read again at most this often while jobs keep changing (and at once when a
// followed job ends).
const COUNTS_MS = 5000;
const KEY_SLOT = "jobstatus.dashboard.key";
const STATES = ["queued", "submitted", "running", "done", "failed", "cancelled"];
const FINAL = new Set(["done", "failed", "cancelled"]);
const SHOWN_CHARS = 300; // longer strings are cut in the table (the job view shows them whole)

// -- URLs, relative to the page ----------------------------------------------------------------
const API = new URL("../", new URL(".", location.href));
const urls = {
  jobs: () => new URL("jobs", API),
  job: (id) => new URL("jobs/" + encodeURIComponent(id), API),
  statuses: () => new URL("jobs/status", API),
  cancel: () => new URL("job/cancel", API),
};

// -- DOM helpers -------------------------------------------------------------------------------
const $ = (id) => document.getElementById(id);

/** An element; string children become Text nodes (never parsed as markup). */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function cut(text, limit = SHOWN_CHARS) {
  return text.length > limit ? text.slice(0, limit) + "…" : text;
}

function stateClass(status) {
  return STATES.includes(status) ? "state-" + status : "state-other";
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
const shortDate = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});

function parseTime(text) {
  if (typeof text !== "string") return null;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms : null;
}

function timeNode(text) {
  const ms = parseTime(text);
  if (ms === null) return el("span", { class: "muted", text: "—" });
  const date = new Date(ms);
  const sameDay = new Date().toDateString() === date.toDateString();
  return el("time", {
    dateTime: text,
    title: dateTime.format(date),
    text: sameDay ? timeOnly.format(date) : shortDate.format(date),
  });
}

function duration(ms) {
  if (!(ms >= 0)) return "—";
  const s = ms / 1000;
  if (s < 10) return s.toFixed(1) + " s";
  if (s < 60) return Math.floor(s) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

function jobDuration(entry, now) {
  const start = parseTime(entry.started_at);
  if (start === null) return null;
  const end = parseTime(entry.ended_at) ?? (FINAL.has(entry.job_status) ? null : now);
  return end === null ? null : end - start;
}

function percentOf(progress) {
  if (!progress || typeof progress !== "object") return null;
  const { percent, current, total } = progress;
  if (typeof percent === "number" && Number.isFinite(percent)) {
    return Math.max(0, Math.min(100, percent));
  }
  if (typeof current === "number" && typeof total === "number" && total > 0) {
    return Math.max(0, Math.min(100, (100 * current) / total));
  }
  return null;
}

// -- talking to the service --------------------------------------------------------------------
class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}
class NetworkError extends Error {}

const state = {
  key: null,
  windowSeconds: 3600,
  pageSize: 100,
  states: new Set(),
  search: "",
  cursors: [null],
  pageIndex: 0,
  nextCursor: null,
  rows: new Map(), // job_id -> {entry, tr, cells}
  order: [], // the job ids shown, in the table's order
  total: null,
  listGen: 0,
  countGen: 0,
};

/** One request with the key; resolves to {status, data, etag, retryAfter}. */
async function call(url, { method = "GET", body, etag, signal } = {}) {
  const headers = { "x-api-key": state.key, accept: "application/json" };
  if (etag) headers["if-none-match"] = etag;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
      referrerPolicy: "no-referrer",
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new NetworkError("network");
  }
  const retryAfter = Number(response.headers.get("retry-after")) || null;
  const tag = response.headers.get("etag");
  if (response.status === 304) return { status: 304, data: null, etag: tag, retryAfter };
  let data = null;
  try {
    data = await response.json();
  } catch (error) {
    if (error.name === "AbortError") throw error;
    data = null;
  }
  if (!response.ok) {
    const message = data && typeof data.message === "string" ? data.message : response.statusText;
    throw new HttpError(response.status, message);
  }
  return { status: response.status, data, etag: tag, retryAfter };
}

function listUrl({ cursor = null, limit = state.pageSize, states = state.states } = {}) {
  const url = urls.jobs();
  url.searchParams.set("limit", String(limit));
  if (cursor) {
    url.searchParams.set("cursor", cursor);
    return url;
  }
  url.searchParams.set("since_seconds", String(state.windowSeconds));
  if (states.size) url.searchParams.set("status", [...states].join(","));
  return url;
}

// -- the key -----------------------------------------------------------------------------------
function showKeyView(message = "") {
  stopLive();
  state.key = null;
  $("jobs-view").hidden = true;
  $("forget").hidden = true;
  $("key-view").hidden = false;
  $("key-error").textContent = message;
  $("key-input").setAttribute("aria-invalid", message ? "true" : "false");
  setLive("");
  closeJob();
  $("key-input").focus();
}

function forgetKey(message = "") {
  sessionStorage.removeItem(KEY_SLOT);
  clearRows();
  $("counts").replaceChildren();
  showKeyView(message);
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("key-input");
  const key = input.value;
  if (!key) {
    $("key-error").textContent = "Enter the API key the service was given.";
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  input.value = "";
  sessionStorage.setItem(KEY_SLOT, key);
  start(key, { focus: true });
});

$("forget").addEventListener("click", () => forgetKey());

// -- notices -----------------------------------------------------------------------------------
function setLive(text, kind = "") {
  const live = $("live");
  live.textContent = text;
  live.className = "live " + kind;
}

function showNotice(text, action = null) {
  $("notice-text").textContent = text;
  const button = $("notice-action");
  button.hidden = !action;
  if (action) {
    button.textContent = action.label;
    button.onclick = action.run;
  }
  $("notice").hidden = false;
  $("notice").className = "notice error";
}

function clearNotice() {
  $("notice").hidden = true;
}

/** Say what went wrong and what to do; true when the page can keep trying by itself. */
function report(error) {
  if (error instanceof HttpError) {
    if (error.status === 401) {
      forgetKey("The service refused this key (401 Unauthorized). Enter a valid key.");
      return false;
    }
    if (error.status === 403) {
      showNotice(`This key may not list jobs (403: ${error.message}). Use a key with access.`);
      return false;
    }
    if (error.status >= 500) {
      showNotice(
        `The service failed (${error.status}: ${error.message}). Trying again shortly; ` +
          "if it persists, check the server's log.",
        { label: "Try now", run: () => reload() },
      );
      return true;
    }
    if (error.status === 404) {
      showNotice(
        "The job routes were not found next to this page (404). Mount the dashboard with the " +
          "service's routes, under the same prefix.",
      );
      return false;
    }
    showNotice(`The service refused the request (${error.status}: ${error.message}).`, {
      label: "Back to the newest jobs",
      run: () => resetPaging(),
    });
    return false;
  }
  if (error instanceof NetworkError) {
    showNotice(
      "Cannot reach the service. Check your network connection or that the server runs; " +
        "the page keeps trying.",
      { label: "Try now", run: () => reload() },
    );
    return true;
  }
  showNotice(`Something went wrong in the page: ${error.message}`);
  console.warn(error);
  return false;
}

// -- the table ---------------------------------------------------------------------------------
function clearRows() {
  $("rows").replaceChildren();
  state.rows.clear();
  state.order = [];
  syncFollowers();
}

function makeRow(entry) {
  const id = entry.job_id;
  const link = el("a", { class: "job-id mono", href: "#job=" + encodeURIComponent(id) });
  const idText = el("bdi", { class: "data" });
  link.append(idText);
  const badge = el("span", { class: "badge" });
  const bar = el("progress", { max: 100 });
  const pct = el("span", { class: "pct" });
  const message = el("bdi", { class: "msg data" });
  const progressBox = el("div", { class: "progress" }, bar, pct, message);
  const cells = {
    id: el("td", { class: "id-cell", "data-label": "Job" }, link),
    state: el("td", { "data-label": "State" }, badge),
    progress: el("td", { class: "progress-col", "data-label": "Progress" }, progressBox),
    created: el("td", { "data-label": "Created" }),
    started: el("td", { "data-label": "Started" }),
    ended: el("td", { "data-label": "Ended" }),
    duration: el("td", { class: "num", "data-label": "Duration" }),
  };
  const tr = el("tr", {}, ...Object.values(cells));
  const row = { entry: null, tr, cells, link, idText, badge, bar, pct, message, box: progressBox };
  idText.textContent = id; // at most 250 bytes: every store refuses longer ids
  fillRow(row, entry);
  return row;
}

function fillRow(row, entry) {
  const before = row.entry;
  row.entry = entry;
  if (!before || before.job_status !== entry.job_status) {
    const status = String(entry.job_status);
    row.badge.className = "badge " + stateClass(status);
    row.badge.textContent = cut(status, 40);
    row.tr.className = stateClass(status);
  }
  if (!before || JSON.stringify(before.progress) !== JSON.stringify(entry.progress)) {
    const progress = entry.progress && typeof entry.progress === "object" ? entry.progress : null;
    const percent = percentOf(progress);
    if (percent === null) row.bar.removeAttribute("value");
    else row.bar.value = percent;
    row.bar.hidden = !progress;
    row.box.classList.toggle("none", !progress);
    row.cells.progress.classList.toggle("blank", !progress);
    row.pct.textContent = percent === null ? (progress ? "" : "—") : `${Math.round(percent)} %`;
    const text = progress && typeof progress.message === "string" ? progress.message : "";
    row.message.textContent = cut(text);
    row.bar.setAttribute(
      "aria-label",
      percent === null ? "progress unknown" : `${Math.round(percent)} percent`,
    );
  }
  for (const name of ["created", "started", "ended"]) {
    const value = entry[name + "_at"];
    if (!before || before[name + "_at"] !== value) {
      row.cells[name].replaceChildren(timeNode(value));
      row.cells[name].classList.toggle("blank", parseTime(value) === null);
    }
  }
  tickRow(row, Date.now());
}

function tickRow(row, now) {
  const ms = jobDuration(row.entry, now);
  const text = ms === null ? "—" : duration(ms);
  if (row.cells.duration.textContent !== text) {
    row.cells.duration.textContent = text;
    row.cells.duration.classList.toggle("blank", ms === null);
  }
}

/** Show these entries, newest first, moving and updating rows in place. */
function render(entries) {
  const body = $("rows");
  const keep = new Set();
  const order = [];
  let index = 0;
  for (const entry of entries) {
    if (!entry || typeof entry.job_id !== "string") continue;
    let row = state.rows.get(entry.job_id);
    if (row) fillRow(row, entry);
    else {
      row = makeRow(entry);
      state.rows.set(entry.job_id, row);
    }
    keep.add(entry.job_id);
    order.push(entry.job_id);
    const here = body.children[index];
    if (here !== row.tr) body.insertBefore(row.tr, here || null);
    index += 1;
  }
  for (const [id, row] of state.rows) {
    if (!keep.has(id)) {
      row.tr.remove();
      state.rows.delete(id);
    }
  }
  state.order = order;
  const empty = keep.size === 0;
  $("empty").hidden = !empty;
  $("table").hidden = empty;
  if (empty) explainEmpty();
  syncFollowers();
}

function explainEmpty() {
  const windowText = $("window").selectedOptions[0].textContent;
  let title = `No jobs were updated in the last ${windowText}.`;
  let hint = "Widen the time window, or check that workers write to the store this service reads.";
  if (state.search) {
    title = `No job id starts with “${cut(state.search, 80)}” in the last ${windowText}.`;
    hint = "Check the id, widen the time window or clear the state filter.";
  } else if (state.states.size) {
    title = `No ${[...state.states].join(" or ")} jobs in the last ${windowText}.`;
    hint = "Clear the state filter or widen the time window.";
  } else if (state.pageIndex > 0) {
    title = "No older jobs.";
    hint = "Go back to newer jobs.";
  }
  $("empty-title").textContent = title;
  $("empty-hint").textContent = hint;
}

function describePage(count) {
  const first = state.pageIndex * state.pageSize + 1;
  const last = state.pageIndex * state.pageSize + count;
  const windowText = $("window").selectedOptions[0].textContent;
  let text = count ? `Jobs ${first}–${last}` : "No jobs";
  if (state.search) text = count ? `${count} job(s) whose id starts with the search` : text;
  else if (state.total !== null) text += ` of ${state.total}`;
  text += ` updated in the last ${windowText}, newest first`;
  if (state.states.size) text += ` (${[...state.states].join(", ")})`;
  $("list-summary").textContent = text + ".";
  $("page-label").textContent = state.search ? "" : `Page ${state.pageIndex + 1}`;
  $("newer").disabled = state.search !== "" || state.pageIndex === 0;
  $("older").disabled = state.search !== "" || !state.nextCursor;
}

setInterval(() => {
  if (document.hidden) return;
  const now = Date.now();
  for (const row of state.rows.values()) {
    if (!FINAL.has(row.entry.job_status)) tickRow(row, now);
  }
}, 1000);

// -- loading -----------------------------------------------------------------------------------
function setLoading(on) {
  $("table").setAttribute("aria-busy", on ? "true" : "false");
  $("loading").hidden = !on;
}

/** Load and show the current page; resolves to its first job, as listed. */
async function loadPage({ quiet = false } = {}) {
  const gen = ++state.listGen;
  let first;
  if (!quiet) setLoading(true);
  try {
    const { entries, next } = state.search
      ? await searchPage(state.search)
      : await listPage(state.cursors[state.pageIndex]);
    if (gen !== state.listGen) return;
    state.nextCursor = next;
    render(entries);
    describePage(entries.length);
    first = entries[0];
  } finally {
    if (gen === state.listGen) setLoading(false);
  }
  return first;
}

async function listPage(cursor) {
  const { data } = await call(listUrl({ cursor }));
  const page = data && data.response ? data.response : {};
  const entries = Array.isArray(page.jobs) ? page.jobs : [];
  return { entries, next: typeof page.next_cursor === "string" ? page.next_cursor : null };
}

// The list route has no id filter: a search reads the window's pages (1,000 jobs each, at most
// SEARCH_PAGES of them) and keeps the ids that start with the text; an id typed whole that is
// not in the window is then asked for directly.
const SEARCH_PAGES = 20;

async function searchPage(prefix) {
  const found = [];
  let cursor = null;
  let pages = 0;
  do {
    const { data } = await call(listUrl({ cursor, limit: 1000 }));
    const page = data && data.response ? data.response : {};
    for (const entry of Array.isArray(page.jobs) ? page.jobs : []) {
      if (typeof entry.job_id === "string" && entry.job_id.startsWith(prefix)) found.push(entry);
      if (found.length >= state.pageSize) break;
    }
    cursor = typeof page.next_cursor === "string" ? page.next_cursor : null;
    pages += 1;
  } while (cursor && found.length < state.pageSize && pages < SEARCH_PAGES);
  if (!found.length && !prefix.includes("/")) {
    try {
      const { data } = await call(urls.job(prefix));
      if (data && data.response && data.response.job_id === prefix) {
        found.push(entryOf(data.response, null));
      }
    } catch (error) {
      if (!(error instanceof HttpError) || error.status === 401) throw error;
    }
  }
  return { entries: found, next: null };
}

async function loadCounts() {
  const gen = ++state.countGen;
  const { data } = await call(urls.statuses(), {
    method: "POST",
    body: { since_seconds: state.windowSeconds },
  });
  if (gen !== state.countGen) return;
  const counts = new Map(STATES.map((s) => [s, 0]));
  const map = data && data.response && typeof data.response === "object" ? data.response : {};
  let total = 0;
  for (const status of Object.values(map)) {
    const name = String(status);
    counts.set(name, (counts.get(name) || 0) + 1);
    total += 1;
  }
  state.total = state.states.size
    ? [...state.states].reduce((sum, s) => sum + (counts.get(s) || 0), 0)
    : total;
  renderCounts(counts, total);
  describePage(state.rows.size);
}

/** The chips: "all" and one per state, each a toggle of the state filter. Redrawn only when
 * the states change; otherwise their counts are updated in place (focus and clicks stay). */
function renderCounts(counts, total) {
  const box = $("counts");
  const wanted = [["", total], ...counts];
  const shown = [...box.children];
  const same =
    shown.length === wanted.length &&
    shown.every((chip, index) => chip.dataset.state === wanted[index][0]);
  if (!same) box.replaceChildren(...wanted.map(([name]) => makeChip(name)));
  [...box.children].forEach((chip, index) => {
    const [name, count] = wanted[index];
    const text = String(count);
    const number = chip.querySelector(".count");
    if (number.textContent !== text) number.textContent = text;
    const on = name ? state.states.has(name) : state.states.size === 0;
    chip.setAttribute("aria-pressed", on ? "true" : "false");
  });
}

function makeChip(name) {
  return el(
    "button",
    { type: "button", class: name ? "chip " + stateClass(name) : "chip all", "data-state": name },
    el("span", { class: "count" }),
    name
      ? el("bdi", { class: "label data", text: cut(name, 40) })
      : el("span", { class: "label", text: "all" }),
  );
}

$("counts").addEventListener("click", (event) => {
  const chip = event.target.closest("button.chip");
  if (!chip) return;
  const name = chip.dataset.state;
  if (!name) state.states.clear();
  else if (state.states.has(name)) state.states.delete(name);
  else state.states.add(name);
  for (const other of $("counts").querySelectorAll("button.chip")) {
    const on = other.dataset.state ? state.states.has(other.dataset.state) : !state.states.size;
    other.setAttribute("aria-pressed", on ? "true" : "false");
  }
  resetPaging();
});

function resetPaging() {
  state.cursors = [null];
  state.pageIndex = 0;
  state.nextCursor = null;
  reload();
}

$("window").addEventListener("change", () => {
  state.windowSeconds = Number($("window").value);
  live.top = undefined;
  resetPaging();
});
$("page-size").addEventListener("change", () => {
  state.pageSize = Number($("page-size").value);
  resetPaging();
});
let searchTimer = 0;
$("search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    const text = $("search").value.trim();
    if (text === state.search) return;
    state.search = text;
    resetPaging();
  }, 250);
});
$("filters").addEventListener("submit", (event) => event.preventDefault());

$("older").addEventListener("click", () => {
  if (!state.nextCursor) return;
  state.cursors = state.cursors.slice(0, state.pageIndex + 1);
  state.cursors.push(state.nextCursor);
  state.pageIndex += 1;
  reload().then(() => $("jobs-table").focus());
});
$("newer").addEventListener("click", () => {
  if (state.pageIndex === 0) return;
  state.pageIndex -= 1;
  reload().then(() => $("jobs-table").focus());
});

// -- live updates ------------------------------------------------------------------------------
const live = { timer: 0, top: undefined, failures: 0, busy: false, lastFull: 0, lastCounts: 0 };

/** The newest write in the window, as text: any write to any job changes it. */
async function probeTop() {
  const { data } = await call(listUrl({ limit: 1, states: new Set() }));
  const jobs = data && data.response && Array.isArray(data.response.jobs) ? data.response.jobs : [];
  return JSON.stringify(jobs[0] || null);
}

/** Read the window again. The probe's baseline is read before the page, so that no write can
 * fall between them unseen; on the first page of the unfiltered list, the page's own first
 * job is that baseline, and the page is asked for at once. */
async function reload() {
  if (!state.key) return;
  clearTimeout(live.timer);
  try {
    const unfiltered = !state.states.size && !state.search && state.pageIndex === 0;
    if (unfiltered) {
      const [first] = await Promise.all([loadPage(), loadCounts()]);
      live.top = JSON.stringify(first || null);
    } else {
      live.top = await probeTop();
      await Promise.all([loadPage(), loadCounts()]);
    }
    live.lastFull = live.lastCounts = Date.now();
    live.failures = 0;
    clearNotice();
    setLive("Live", "on");
  } catch (error) {
    if (error.name === "AbortError") return;
    if (!report(error)) return;
    live.failures += 1;
    setLive("Connection trouble", "off");
  }
  schedule();
}

function schedule() {
  clearTimeout(live.timer);
  if (!state.key || document.hidden) return;
  claimWaits();
  const delay = live.failures ? Math.min(30000, 1000 * 2 ** live.failures) : PROBE_MS;
  live.timer = setTimeout(tick, delay);
}

async function tick() {
  if (live.busy || !state.key || document.hidden) return;
  live.busy = true;
  try {
    const top = await probeTop();
    const changed = top !== live.top || Date.now() - live.lastFull > FULL_REFRESH_MS;
    live.top = top;
    if (changed || live.failures) {
      // the counts read the whole window: at most every COUNTS_MS while jobs keep changing
      const counts = Date.now() - live.lastCounts >= COUNTS_MS || live.failures;
      await Promise.all([loadPage({ quiet: true }), counts ? loadCounts() : null]);
      live.lastFull = Date.now();
      if (counts) live.lastCounts = live.lastFull;
    }
    if (live.failures) clearNotice();
    live.failures = 0;
    setLive("Live", "on");
  } catch (error) {
    if (error.name !== "AbortError") {
      if (report(error)) {
        live.failures += 1;
        setLive("Connection trouble", "off");
      } else {
        live.busy = false;
        return;
      }
    }
  } finally {
    live.busy = false;
  }
  schedule();
}

function stopLive() {
  clearTimeout(live.timer);
  for (const id of [...followers.keys()]) unfollow(id);
  releaseWaits();
}

document.addEventListener("visibilitychange", () => {
  if (!state.key) return;
  if (document.hidden) {
    stopLive();
    setLive("Paused while the tab is hidden", "off");
  } else {
    reload();
  }
});

// One long-poll per followed job: GET jobs/{id} once for its ETag, then ?wait= with
// If-None-Match; a 304 means "no change", a 200 brings the new document.
const followers = new Map(); // job_id -> {abort}

// Only one page per origin holds long-polls: a browser opens at most six connections to a
// server, and pages that each held waits would take them all and starve every other request.
// The Web Locks API elects that page where the browser offers it (secure contexts, localhost);
// elsewhere every page follows its own jobs.
const WAITS_LOCK = "jobstatus.dashboard.waits";
const waits = { mine: !navigator.locks, asking: false, release: null };

function claimWaits() {
  if (waits.mine || waits.asking || !navigator.locks || document.hidden) return;
  waits.asking = true;
  navigator.locks.request(WAITS_LOCK, { ifAvailable: true }, (lock) => {
    waits.asking = false;
    if (!lock) return undefined; // another page follows jobs: this one relies on the probe
    waits.mine = true;
    syncFollowers();
    return new Promise((resolve) => {
      waits.release = resolve;
    });
  });
}

function releaseWaits() {
  if (!waits.release) return;
  waits.release();
  waits.release = null;
  waits.mine = false;
}

function wanted() {
  const ids = [];
  if (!waits.mine) return new Set(ids);
  if (openJobId && !(openDoc && FINAL.has(openDoc.job_status))) ids.push(openJobId);
  let rows = 0;
  for (const id of state.order) {
    if (rows >= MAX_FOLLOWED) break;
    const row = state.rows.get(id);
    if (row && !FINAL.has(row.entry.job_status) && id !== openJobId) {
      ids.push(id);
      rows += 1;
    }
  }
  return new Set(ids);
}

function syncFollowers() {
  const want = state.key && !document.hidden ? wanted() : new Set();
  for (const id of [...followers.keys()]) if (!want.has(id)) unfollow(id);
  for (const id of want) if (!followers.has(id)) follow(id);
}

function unfollow(id) {
  const follower = followers.get(id);
  if (follower) {
    follower.abort.abort();
    followers.delete(id);
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

async function follow(id) {
  const follower = { abort: new AbortController() };
  followers.set(id, follower);
  const signal = follower.abort.signal;
  let etag = null;
  let failures = 0;
  while (!signal.aborted) {
    const url = urls.job(id);
    if (etag) url.searchParams.set("wait", String(WAIT_SECONDS));
    const asked = performance.now();
    try {
      const answer = await call(url, { etag, signal });
      failures = 0;
      if (answer.status === 304) {
        etag = answer.etag || etag;
        // A wait the server could not hold (all its waiting places taken) answers at once:
        // come back after Retry-After rather than at once.
        if (performance.now() - asked < (WAIT_SECONDS * 1000) / 2) {
          await sleep(1000 * (answer.retryAfter || 2), signal);
        } else {
          await sleep(YIELD_MS, signal); // a request queued for a connection goes first
        }
        continue;
      }
      etag = answer.etag;
      const doc = answer.data && answer.data.response;
      if (doc && typeof doc === "object") applyDoc(doc);
      if (!etag || (doc && FINAL.has(doc.job_status))) break;
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error instanceof HttpError && error.status === 401) {
        report(error);
        return;
      }
      if (error instanceof HttpError && error.status < 500) break; // gone, or not allowed
      failures += 1;
      await sleep(Math.min(30000, 1000 * 2 ** failures), signal);
    }
  }
  if (followers.get(id) === follower) followers.delete(id);
  syncFollowers();
}

/** A job document (from the job route) as a list entry. */
function entryOf(doc, old) {
  const entry = { ...(old || {}), job_id: doc.job_id, job_status: doc.job_status };
  for (const name of ["progress", "created_at", "started_at", "ended_at"]) {
    if (doc[name] === undefined) delete entry[name];
    else entry[name] = doc[name];
  }
  return entry;
}

function applyDoc(doc) {
  const row = state.rows.get(doc.job_id);
  if (row) {
    const wasFinal = FINAL.has(row.entry.job_status);
    fillRow(row, entryOf(doc, row.entry));
    if (!wasFinal && FINAL.has(doc.job_status)) {
      loadCounts().catch(() => {}); // the probe reports failures
    }
  }
  if (doc.job_id === openJobId) showDoc(doc);
}

// -- the job view ------------------------------------------------------------------------------
const dialog = $("job-view");
let openJobId = null;
let openDoc = null;
let opener = null;
let cancelArmed = 0;

function jobIdFromHash() {
  const match = /^#job=(.*)$/.exec(location.hash);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return null;
  }
}

async function openJob(id) {
  if (!state.key) return;
  opener = document.activeElement;
  openJobId = id;
  openDoc = null;
  $("job-title-id").textContent = id;
  $("job-doc").replaceChildren(el("p", { class: "muted", text: "Loading the job…" }));
  $("job-error").hidden = true;
  $("job-note").textContent = "";
  $("cancel-job").hidden = true;
  $("copy-fallback").hidden = true;
  if (!dialog.open) dialog.showModal();
  $("job-close").focus();
  try {
    const { data } = await call(urls.job(id));
    if (openJobId !== id) return;
    showDoc(data.response);
  } catch (error) {
    if (openJobId !== id) return;
    if (error instanceof HttpError && error.status === 401) {
      report(error);
      return;
    }
    $("job-doc").replaceChildren();
    $("job-error").hidden = false;
    $("job-error").textContent =
      error instanceof HttpError
        ? error.status === 404
          ? "This job is not in the store (404): it may have expired or been purged."
          : `The service answered ${error.status}: ${error.message}`
        : "Cannot reach the service; close this view and try again.";
  }
  syncFollowers();
}

function closeJob() {
  if (dialog.open) dialog.close();
}

dialog.addEventListener("close", () => {
  if (dialog.open) return; // opened again (another job) before this event came
  const closed = openJobId;
  openJobId = null;
  openDoc = null;
  if (closed !== null && jobIdFromHash() === closed) {
    history.replaceState(null, "", location.pathname + location.search);
  }
  if (opener && opener.isConnected) opener.focus();
  syncFollowers();
});
$("job-close").addEventListener("click", closeJob);
window.addEventListener("hashchange", () => {
  const id = jobIdFromHash();
  if (id !== null) openJob(id);
  else closeJob();
});

function showDoc(doc) {
  if (!doc || typeof doc !== "object") return;
  openDoc = doc;
  const list = [];
  for (const [key, value] of Object.entries(doc)) {
    const dt = el("dt", { class: "mono" }, el("bdi", { class: "data", text: key }));
    const dd = el("dd", {}, valueNode(key, value));
    list.push(dt, dd);
  }
  $("job-doc").replaceChildren(...list);
  const cancel = $("cancel-job");
  const canCancel = ALLOW_CANCEL && !FINAL.has(doc.job_status) && !doc.cancel_requested_at;
  cancel.hidden = !canCancel;
  if (!canCancel) disarmCancel();
}

function valueNode(key, value) {
  if (key === "job_status") {
    return el("span", { class: "badge " + stateClass(String(value)), text: String(value) });
  }
  if (key.endsWith("_at") && typeof value === "string" && parseTime(value) !== null) {
    return el(
      "span",
      {},
      timeNode(value),
      el("span", { class: "muted" }, " (", el("bdi", { class: "data mono", text: value }), ")"),
    );
  }
  if (value !== null && typeof value === "object") {
    const budget = { nodes: 3000 };
    return el(
      "details",
      { class: "json", open: true },
      el("summary", { text: summaryOf(value) }),
      jsonNode(value, 0, budget),
    );
  }
  return leaf(value);
}

function summaryOf(value) {
  return Array.isArray(value)
    ? `[ ${value.length} item${value.length === 1 ? "" : "s"} ]`
    : `{ ${Object.keys(value).length} key${Object.keys(value).length === 1 ? "" : "s"} }`;
}

function leaf(value) {
  if (typeof value === "string") return el("span", { class: "data j-string", text: value });
  if (value === null) return el("span", { class: "j-null", text: "null" });
  return el("span", { class: "j-" + typeof value, text: String(value) });
}

/** Pretty JSON as nested <details>, every string as text; past the node budget, plain text. */
function jsonNode(value, depth, budget) {
  if (value === null || typeof value !== "object") return leaf(value);
  if (budget.nodes <= 0) {
    return el("pre", { class: "data j-rest", text: JSON.stringify(value, null, 2) });
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
  const items = [];
  for (const [name, child] of entries) {
    budget.nodes -= 1;
    const label = el("span", { class: "j-key data", text: name });
    let node;
    if (child !== null && typeof child === "object") {
      node = el(
        "details",
        { open: depth < 3 },
        el("summary", {}, label, el("span", { class: "muted", text: " " + summaryOf(child) })),
        jsonNode(child, depth + 1, budget),
      );
    } else {
      node = el("div", { class: "j-line" }, label, el("span", { class: "muted", text: ": " }), leaf(child));
    }
    items.push(el("li", {}, node));
  }
  return el("ul", { class: "j-tree" }, ...items);
}

// copy buttons: the clipboard where the browser allows it, else a selected text box
async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    $("job-note").textContent = `${what} copied.`;
    $("copy-fallback").hidden = true;
  } catch {
    $("copy-fallback").hidden = false;
    $("copy-text").value = text;
    $("copy-text").select();
    $("copy-text").focus();
    $("job-note").textContent = `Copy the ${what.toLowerCase()} from the box (Ctrl+C).`;
  }
}

function shellQuote(text) {
  return "'" + text.replaceAll("'", "'\\''") + "'";
}

$("copy-id").addEventListener("click", () => openJobId !== null && copy(openJobId, "Id"));
$("copy-curl").addEventListener("click", () => {
  if (openJobId === null) return;
  // The key stays out of the command: it reads it from the environment.
  const command = `curl -sS -H "x-api-key: $JOBSTATUS_API_KEY" ${shellQuote(urls.job(openJobId).href)}`;
  copy(command, "Command");
});

function disarmCancel() {
  clearTimeout(cancelArmed);
  cancelArmed = 0;
  const button = $("cancel-job");
  button.textContent = "Cancel job";
  button.classList.remove("armed");
}

$("cancel-job").addEventListener("click", async () => {
  const button = $("cancel-job");
  if (!cancelArmed) {
    button.textContent = "Press again to cancel";
    button.classList.add("armed");
    $("job-note").textContent = "Cancelling asks the job to stop; press again to confirm.";
    cancelArmed = setTimeout(disarmCancel, 5000);
    return;
  }
  disarmCancel();
  const id = openJobId;
  button.disabled = true;
  try {
    const { status, data } = await call(urls.cancel(), { method: "POST", body: { job_id: id } });
    $("job-note").textContent =
      status === 202 ? "The job was asked to stop." : "The job is cancelled.";
    if (data && data.response) applyDoc(data.response);
    loadCounts().catch(() => {});
  } catch (error) {
    if (error instanceof HttpError && error.status === 401) {
      report(error);
      return;
    }
    $("job-error").hidden = false;
    $("job-error").textContent =
      error instanceof HttpError
        ? `Cancelling failed (${error.status}: ${error.message}).`
        : "Cannot reach the service; the job was not cancelled.";
  } finally {
    button.disabled = false;
  }
});

// -- start -------------------------------------------------------------------------------------
function start(key, { focus = false } = {}) {
  state.key = key;
  $("key-view").hidden = true;
  $("jobs-view").hidden = false;
  $("forget").hidden = false;
  $("key-error").textContent = "";
  setLive("Connecting…");
  reload().then(() => {
    const id = jobIdFromHash();
    if (id !== null && state.key) openJob(id);
  });
  if (focus) $("search").focus();
}

const saved = sessionStorage.getItem(KEY_SLOT);
if (saved) start(saved);
else showKeyView();
