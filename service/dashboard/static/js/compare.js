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
  Promise.all(jobs.map(async (j) => {
    const data = await convlab.getJSON(j.url + "?max_points=" + maxPoints);
    const series = (data && data.series) || {};
    for (const name of Object.keys(metrics)) charts[name].set(j.id, series[name] || []);
  })).then(() => { document.getElementById("main").dataset.loaded = "1"; });
})();
