/* The jobs table: refreshed every 2 s from /jobs.json with the page's filters; filters apply
 * as you type (the URL follows, so a reload or a shared link shows the same view). */
"use strict";

(function () {
  const main = document.getElementById("main");
  const form = document.getElementById("filters");
  const body = document.getElementById("jobs-body");
  const el = convlab.el;
  const selected = new Set();

  body.addEventListener("change", (e) => {
    if (e.target.name !== "ids") return;
    if (e.target.checked) selected.add(e.target.value); else selected.delete(e.target.value);
  });
  body.querySelectorAll('input[name="ids"]:checked').forEach((box) => selected.add(box.value));

  function query(page) {
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) params.set(k, v);
    const current = new URLSearchParams(location.search).get("page");
    const p = page === undefined ? current : page;
    if (p && p !== "1") params.set("page", p);
    return params.toString();
  }

  function row(j) {
    const link = el("a", {href: main.dataset.jobUrl.replace("JOB_ID", encodeURIComponent(j.id))}, j.name);
    return el("tr", {dataset: {id: j.id}},
      el("td", {class: "sel"}, el("input", {type: "checkbox", name: "ids", value: j.id,
        "aria-label": "select " + j.name, checked: selected.has(j.id)})),
      el("td", {class: "name"}, link,
        el("div", {class: "muted small mono"}, j.id.slice(0, 8) + (main.dataset.admin ? " · " + j.user : ""))),
      el("td", {}, j.type),
      el("td", {}, convlab.statusBadge(j.status)),
      el("td", {}, convlab.tags(j.tags)),
      el("td", {}, convlab.progressCell(j)),
      el("td", {class: "nowrap"}, convlab.timestamp(j.created_at)),
      el("td", {class: "nowrap"}, convlab.duration(j.duration_s)));
  }

  function render(data) {
    const rows = data.jobs.map(row);
    if (!rows.length) rows.push(el("tr", {class: "empty"}, el("td", {colspan: "8"}, "No jobs match.")));
    body.replaceChildren(...rows);
    const last = data.offset + data.jobs.length;
    document.getElementById("range").textContent =
      (data.jobs.length ? data.offset + 1 : 0) + "–" + last + " of " + data.total;
    const page = data.filters.page;
    const prev = document.getElementById("prev"), next = document.getElementById("next");
    prev.hidden = page <= 1;
    next.hidden = last >= data.total;
    prev.href = "?" + query(String(page - 1));
    next.href = "?" + query(String(page + 1));
    document.getElementById("no-workers").hidden = data.workers_alive > 0;
    main.dataset.refreshed = String(Date.now());
  }

  async function refresh() {
    const data = await convlab.getJSON(main.dataset.feed + "?" + query());
    if (data) render(data);
  }

  let typing = null;
  function filtersChanged() {
    clearTimeout(typing);
    typing = setTimeout(() => {
      const q = query("1");
      history.replaceState(null, "", location.pathname + (q ? "?" + q : ""));
      refresh();
    }, 250);
  }
  form.addEventListener("input", filtersChanged);
  form.addEventListener("change", filtersChanged);
  form.addEventListener("submit", (e) => { e.preventDefault(); filtersChanged(); });

  convlab.every(2000, refresh);
})();
