/* Shared helpers of the dashboard's pages (no framework).
 * User text only ever reaches the page through textContent (see el()), never innerHTML. */
"use strict";

const convlab = (window.convlab = window.convlab || {});

/** An element: el("a", {href: "/x", class: "y"}, "text", otherNode). Strings become text nodes. */
convlab.el = function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
};

/** The CSRF token of this session (sent as X-CSRF-Token on every POST). */
convlab.csrf = () => document.querySelector('meta[name="csrf-token"]').content;

/** POST JSON (extra headers optional); resolves to {status, body} (body parsed when it is JSON). */
convlab.postJSON = async function postJSON(url, data, headers = {}) {
  const response = await fetch(url, {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": convlab.csrf(), "Accept": "application/json",
              ...headers},
    body: JSON.stringify(data),
  });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  return {status: response.status, body};
};

/** GET JSON, or null on any failure (the caller tries again later). */
convlab.getJSON = async function getJSON(url) {
  try {
    const response = await fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}});
    if (response.status === 401) { window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search)); return null; }
    return response.ok ? await response.json() : null;
  } catch (e) {
    return null;
  }
};

/** Call fn every `ms` milliseconds (waiting for each call to finish), slower while the tab is hidden. */
convlab.every = function every(ms, fn) {
  let timer = null;
  const tick = async () => {
    try { await fn(); } finally { timer = setTimeout(tick, document.hidden ? ms * 5 : ms); }
  };
  timer = setTimeout(tick, ms);
  return () => clearTimeout(timer);
};

convlab.duration = function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
  return Math.floor(s / 3600) + "h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
};

convlab.number = function number(v, digits = 4) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return String(v);
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(2);
  return String(Number(v.toPrecision(digits)));
};

convlab.timestamp = function timestamp(iso) {
  return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("Z", "") : "–";
};

convlab.statusBadge = (status) => convlab.el("span", {class: "status status-" + status}, status);

convlab.tags = (tags) => (tags || []).map((t) => convlab.el("span", {class: "tag"}, t));

/** The progress cell of a job summary: queue position, or a bar with percentage and ETA. */
convlab.progressCell = function progressCell(job) {
  const el = convlab.el;
  if (job.status === "queued") {
    return el("div", {class: "progress-cell"},
      el("span", {class: "muted"}, "queued" + (job.queue_position ? " · #" + job.queue_position + " in line" : "")
        + (job.queue_eta_s !== null && job.queue_eta_s !== undefined ? " · starts in ~" + convlab.duration(job.queue_eta_s) : "")));
  }
  const parts = [];
  if (job.fraction !== null && job.fraction !== undefined) parts.push(Math.round(job.fraction * 100) + "%");
  if (job.eta_s !== null && job.eta_s !== undefined) parts.push("ETA " + convlab.duration(job.eta_s));
  return el("div", {class: "progress-cell"},
    el("progress", {max: "1", value: String(job.fraction || 0)}),
    el("span", {class: "muted"}, parts.join(" · ")));
};

/** A table of numbers coloured by magnitude (classes hp1..hp6 / hn1..hn6; no inline styles). */
convlab.heatTable = function heatTable(matrix, {diverging = true, caption = null, labels = null,
                                                 format = convlab.number} = {}) {
  const el = convlab.el;
  let peak = 0;
  for (const row of matrix) for (const v of row) if (v !== null) peak = Math.max(peak, Math.abs(v));
  peak = peak || 1;
  const table = el("table", {class: "heat"}, caption ? el("caption", {}, caption) : null);
  if (labels) table.append(el("thead", {}, el("tr", {}, el("th"), labels.map((l) => el("th", {scope: "col"}, l)))));
  const body = el("tbody");
  matrix.forEach((row, r) => {
    body.append(el("tr", {}, labels ? el("th", {scope: "row"}, labels[r]) : null, row.map((v) => {
      const level = !v ? 0 : Math.max(1, Math.ceil((Math.abs(v) / peak) * 6));
      const cls = level === 0 ? "h0" : (diverging && v < 0 ? "hn" : "hp") + level;
      return el("td", {class: cls, title: String(v)}, format(v));
    })));
  });
  table.append(body);
  return table;
};

/* A form with data-confirm asks before it is sent (the delete button: nothing is sent if the user says no). */
document.addEventListener("submit", (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
