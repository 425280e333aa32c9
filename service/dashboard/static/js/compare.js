/* Compare: the same metric of every selected job overlaid on one chart per metric. */
"use strict";

(function () {
  const items = [...document.querySelectorAll("#compare-jobs li")];
  if (!items.length) return;
  const jobs = items.map((li, i) => ({id: li.dataset.jobId, label: li.dataset.name, url: li.dataset.series,
    color: convlab.PALETTE[i % convlab.PALETTE.length]}));
  const metrics = {
    train_loss: {id: "compare-train-loss", y: "loss", points: false},
    val_loss: {id: "compare-val-loss", y: "loss", points: true},
    val_accuracy: {id: "compare-val-accuracy", y: "accuracy", points: true, range: [0, 1]},
  };
  const charts = {};
  for (const [name, m] of Object.entries(metrics)) {
    charts[name] = new convlab.Chart(document.getElementById(m.id),
      jobs.map((j) => ({name: j.id, label: j.label, color: j.color, points: m.points})),
      {yLabel: m.y, yRange: m.range || null});
  }
  const width = document.getElementById("compare-train-loss").clientWidth || 800;
  const maxPoints = Math.min(8000, Math.max(500, 2 * width));
  // Layer health (docs/trust.md): any layers.{i}.* series of the jobs, one at a time, overlaid.
  const all = {};
  let health = null;
  function showHealth(name) {
    if (!health) {
      health = new convlab.Chart(document.getElementById("compare-health"),
        jobs.map((j) => ({name: j.id, label: j.label, color: j.color, points: true})), {yLabel: "value"});
    }
    for (const j of jobs) health.set(j.id, (all[j.id] || {})[name] || []);
  }
  Promise.all(jobs.map(async (j) => {
    const data = await convlab.getJSON(j.url + "?max_points=" + maxPoints);
    const series = (data && data.series) || {};
    all[j.id] = series;
    for (const name of Object.keys(metrics)) charts[name].set(j.id, series[name] || []);
  })).then(() => {
    const names = [...new Set(Object.values(all).flatMap((s) => Object.keys(s)))].filter((n) => n.startsWith("layers.")).sort();
    if (names.length) {
      const select = document.getElementById("compare-health-series");
      select.replaceChildren(...names.map((n) => convlab.el("option", {value: n}, n)));
      select.addEventListener("change", () => showHealth(select.value));
      document.getElementById("compare-health-card").hidden = false;
      select.value = names.find((n) => n.endsWith(".grad_norm")) || names[0];
      showHealth(select.value);
    }
    document.getElementById("main").dataset.loaded = "1";
  });
})();
