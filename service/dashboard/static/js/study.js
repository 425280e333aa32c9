/* A study's page: polls study.json; draws the trials table (sortable, selectable), the best value so
 * far over trial number, a parallel-coordinates plot of the parameters against the objective, and the
 * objective's curves of every finished trial overlaid (the best in colour).  SVG is built with
 * createElementNS and text through textContent only. */
"use strict";

(function () {
  const main = document.getElementById("main");
  const NS = "http://www.w3.org/2000/svg";
  const FINISHED = ["succeeded", "failed", "cancelled"];
  const jobUrl = (id) => main.dataset.jobUrl.replace("JOB", id);
  const seriesUrl = (id) => main.dataset.seriesUrl.replace("JOB", id);
  let study = JSON.parse(main.dataset.initial);
  let sortKey = "number", sortDir = 1;
  const selected = new Set();
  const curves = {chart: null, ids: "", loaded: new Map()};

  const svg = (tag, attrs, text) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  };
  const fmt = (v) => (v === null || v === undefined ? "–" : typeof v === "number" ? +v.toPrecision(4) : String(v));
  const better = (a, b) => (study.spec.objective.direction === "maximize" ? a > b : a < b);
  const keys = () => Object.keys(study.spec.space);

  function header() {
    const b = study.best;
    document.getElementById("study-best").textContent = b
      ? `${fmt(b.value)} ± ${fmt(b.std)} over ${b.seeds} seed(s) · ${JSON.stringify(b.params)} · trial job ${b.job_id.slice(0, 8)}`
      : "none yet";
    document.getElementById("study-counts").textContent =
      Object.entries(study.counts).map(([s, n]) => `${n} ${s}`).join(", ") || "no trials yet";
    const st = document.querySelector("#study-status .status");
    st.className = "status status-" + study.status;
    st.textContent = study.status;
    main.dataset.status = study.status;
    const cancel = document.getElementById("cancel-study-form");
    if (cancel) cancel.hidden = study.status !== "running";
  }

  function cell(t, key) {
    if (key in t.params) return t.params[key];
    return t[key];
  }

  function table() {
    const cols = ["number", "status", ...keys(), "seed", "value", "epochs_completed"];
    const thead = document.querySelector("#trials-table thead");
    thead.replaceChildren(convlab.el("tr", {}, convlab.el("th", {}, ""), ...cols.map((c) => {
      const th = convlab.el("th", {"data-key": c, "aria-sort": c === sortKey ? (sortDir > 0 ? "ascending" : "descending") : null,
        tabindex: 0, class: "sort"}, c === "epochs_completed" ? "epochs" : c);
      th.addEventListener("click", () => { sortDir = c === sortKey ? -sortDir : 1; sortKey = c; table(); });
      return th;
    })));
    const rows = [...study.trials].sort((a, b) => {
      const x = cell(a, sortKey), y = cell(b, sortKey);
      if (x === y) return a.number - b.number;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * sortDir;
    });
    const best = study.best && study.best.job_id;
    document.querySelector("#trials-table tbody").replaceChildren(...rows.map((t) => {
      const box = convlab.el("input", {type: "checkbox", "aria-label": "select trial " + t.number,
        checked: selected.has(t.job_id)});
      box.addEventListener("change", () => { box.checked ? selected.add(t.job_id) : selected.delete(t.job_id); compareLink(); });
      const epochs = t.status === "pruned" ? `${t.epochs_completed} (pruned)` : t.epochs_completed;
      return convlab.el("tr", {dataset: {jobId: t.job_id, status: t.status}, class: t.job_id === best ? "best" : null},
        convlab.el("td", {}, box),
        convlab.el("td", {}, convlab.el("a", {href: jobUrl(t.job_id)}, t.number)),
        convlab.el("td", {}, convlab.el("span", {class: "status status-" + t.status}, t.status)),
        ...keys().map((k) => convlab.el("td", {class: "mono"}, fmt(t.params[k]))),
        convlab.el("td", {class: "mono"}, fmt(t.seed)), convlab.el("td", {class: "mono"}, fmt(t.value)),
        convlab.el("td", {}, epochs));
    }));
  }

  function compareLink() {
    const a = document.getElementById("compare-selected");
    a.href = main.dataset.compareUrl + "?ids=" + [...selected].join(",");
    a.setAttribute("aria-disabled", selected.size >= 2 ? "false" : "true");
  }

  function bestSoFar() {
    const box = document.getElementById("best-so-far");
    const done = study.trials.filter((t) => t.status === "succeeded" && t.value !== null).sort((a, b) => a.number - b.number);
    const W = 480, H = 220, P = 36;
    const s = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "best value so far by trial number"});
    box.replaceChildren(s);
    box.dataset.points = String(done.length);
    if (!done.length) { s.append(svg("text", {x: W / 2, y: H / 2, "text-anchor": "middle", class: "muted"}, "no finished trial yet")); return; }
    let best = null;
    const pts = done.map((t) => { if (best === null || better(t.value, best)) best = t.value; return [t.number, best, t.value]; });
    const n = Math.max(1, Math.max(...study.trials.map((t) => t.number)));
    const vals = pts.flatMap((p) => [p[1], p[2]]);
    const lo = Math.min(...vals), hi = Math.max(...vals), span = hi - lo || 1;
    const X = (i) => P + (i / n) * (W - 2 * P), Y = (v) => H - P - ((v - lo) / span) * (H - 2 * P);
    s.append(svg("line", {x1: P, y1: H - P, x2: W - P, y2: H - P, stroke: "#94a3b8"}));
    s.append(svg("line", {x1: P, y1: P, x2: P, y2: H - P, stroke: "#94a3b8"}));
    s.append(svg("text", {x: W / 2, y: H - 6, "text-anchor": "middle", "font-size": 11}, "trial"));
    s.append(svg("text", {x: 2, y: P - 8, "font-size": 11}, fmt(hi)), svg("text", {x: 2, y: H - P, "font-size": 11}, fmt(lo)));
    for (const p of pts) s.append(svg("circle", {cx: X(p[0]), cy: Y(p[2]), r: 3, fill: "#94a3b8"}));
    s.append(svg("polyline", {points: pts.map((p, i) => (i ? `${X(p[0])},${Y(pts[i - 1][1])} ` : "") + `${X(p[0])},${Y(p[1])}`).join(" "),
      fill: "none", stroke: "#2563eb", "stroke-width": 2}));
  }

  function parallel() {
    const box = document.getElementById("parallel");
    const axes = [...keys(), "objective"];
    const done = study.trials.filter((t) => t.value !== null && ["succeeded", "pruned"].includes(t.status));
    const W = 480, H = 240, P = 30;
    const s = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "parameters against the objective"});
    box.replaceChildren(s);
    box.dataset.lines = String(done.length);
    const scale = axes.map((k) => {
      const dim = study.spec.space[k];
      if (dim && dim.type === "choice") return (v) => (dim.values.length > 1 ? dim.values.indexOf(v) / (dim.values.length - 1) : 0.5);
      const vals = k === "objective" ? done.map((t) => t.value) : [dim.low, dim.high];
      const log = dim && dim.type === "log_uniform";
      const f = (v) => (log ? Math.log(v) : v);
      const lo = Math.min(...vals.map(f)), hi = Math.max(...vals.map(f));
      return (v) => (hi > lo ? (f(v) - lo) / (hi - lo) : 0.5);
    });
    const X = (i) => 2 * P + (i / Math.max(1, axes.length - 1)) * (W - 4 * P), Y = (u) => H - P - u * (H - 2 * P);
    axes.forEach((k, i) => {
      s.append(svg("line", {x1: X(i), y1: P, x2: X(i), y2: H - P, stroke: "#94a3b8"}));
      s.append(svg("text", {x: X(i), y: H - 8, "text-anchor": "middle", "font-size": 10}, k.length > 22 ? "…" + k.slice(-21) : k));
    });
    const objective = scale[scale.length - 1];
    for (const t of done) {
      const u = objective(t.value), good = study.spec.objective.direction === "maximize" ? u : 1 - u;
      const pts = axes.map((k, i) => `${X(i)},${Y(scale[i](k === "objective" ? t.value : t.params[k]))}`).join(" ");
      const line = svg("polyline", {points: pts, fill: "none", "stroke-width": study.best && t.job_id === study.best.job_id ? 3 : 1.5,
        stroke: `hsl(${Math.round(220 * good)}, 70%, 45%)`, opacity: t.status === "pruned" ? 0.35 : 0.85});
      line.append(svg("title", {}, `trial ${t.number}: ${fmt(t.value)}`));
      s.append(line);
    }
  }

  async function curvesChart() {
    const metric = study.spec.objective.metric;
    const done = study.trials.filter((t) => FINISHED.concat(["pruned"]).includes(t.status));
    const best = study.best && study.best.job_id;
    const ids = done.map((t) => t.job_id).join(",") + "|" + best;
    if (!done.length || ids === curves.ids) return;       // uPlot needs at least one series
    curves.ids = ids;
    await Promise.all(done.filter((t) => !curves.loaded.has(t.job_id)).map(async (t) => {
      const data = await convlab.getJSON(seriesUrl(t.job_id) + "?names=" + metric);
      curves.loaded.set(t.job_id, ((data && data.series) || {})[metric] || []);
    }));
    const box = document.getElementById("study-curves");
    box.replaceChildren();
    const series = done.map((t) => ({name: t.job_id, label: `trial ${t.number}`, points: true,
      color: t.job_id === best ? "#dc2626" : "#cbd5e1"}));
    curves.chart = new convlab.Chart(box, series, {yLabel: metric, yRange: metric === "val_accuracy" ? [0, 1] : null});
    for (const t of done) curves.chart.set(t.job_id, curves.loaded.get(t.job_id));
  }

  async function render() {
    header(); table(); compareLink(); bestSoFar(); parallel();
    await curvesChart();
    main.dataset.loaded = "1";
  }

  render();
  const stop = convlab.every(1500, async () => {
    const data = await convlab.getJSON(main.dataset.poll);
    if (!data) return;
    study = data;
    await render();
    if (study.status !== "running" && !study.trials.some((t) => ["queued", "running"].includes(t.status))) stop();
  });
})();
