/* The job page: live status, progress and curves from the job's event stream; result,
 * confusion matrix and first-layer kernels once it has them; gradient-check report. */
"use strict";

(function () {
  const main = document.getElementById("main");
  const el = convlab.el;
  const TERMINAL = main.dataset.terminal.split(" ");   // convlab.names.TERMINAL_STATUSES
  const isTrain = main.dataset.jobType === "train";
  let kernelsShown = false;

  const charts = {};
  if (isTrain) {
    charts.loss = new convlab.Chart(document.getElementById("chart-loss"), [
      {name: "train_loss", label: "train loss"},
      {name: "val_loss", label: "validation loss", points: true},
      {name: "diverged", label: "diverged here", points: true, color: "#b91c1c"},   // set by trust.js
    ], {yLabel: "loss"});
    charts.accuracy = new convlab.Chart(document.getElementById("chart-accuracy"), [
      {name: "val_accuracy", label: "validation accuracy", points: true, color: convlab.PALETTE[2]},
    ], {yLabel: "accuracy", yRange: [0, 1]});
  }
  const CHART_OF = {train_loss: "loss", val_loss: "loss", val_accuracy: "accuracy"};
  function feed(message, method) {
    if (!isTrain) return;
    for (const [name, points] of Object.entries(message.series)) {
      if (CHART_OF[name]) charts[CHART_OF[name]][method](name, points);
    }
  }

  function showProgress(s) {
    document.getElementById("job-status").replaceChildren(convlab.statusBadge(s.status));
    document.getElementById("job-progress").value = s.fraction || 0;
    const parts = [];
    if (s.status === "queued") parts.push("queued" + (s.queue_position ? " · #" + s.queue_position + " in line" : ""));
    if (s.status === "queued" && s.queue_eta_s !== null && s.queue_eta_s !== undefined) {
      parts.push("starts in ~" + convlab.duration(s.queue_eta_s));
    }
    else if (s.progress && s.progress.total_steps) {
      parts.push("step " + s.progress.step + " of " + s.progress.total_steps, "epoch " + s.progress.epoch);
    }
    if (s.status === "running" && s.eta_s !== null) parts.push("ETA " + convlab.duration(s.eta_s));
    if (s.cancel_requested && s.status === "running") parts.push("cancelling…");
    if (s.duration_s !== null) parts.push(convlab.duration(s.duration_s));
    document.getElementById("progress-text").textContent = parts.join(" · ");
    const errorCard = document.getElementById("error-card");
    errorCard.hidden = !s.error;
    document.getElementById("job-error").textContent = s.error || "";
    const cancel = document.getElementById("cancel-form");
    if (cancel && TERMINAL.includes(s.status)) cancel.hidden = true;
    const remove = document.getElementById("delete-form");
    if (remove) remove.hidden = s.status === "running";
    const weights = document.getElementById("weights-link");
    if (weights) weights.hidden = s.status === "queued" || s.status === "failed";
  }

  function showTrainResult(s) {
    const r = s.result;
    const dl = document.getElementById("result");
    if (!r) {
      dl.replaceChildren(el("dt", {}, "status"), el("dd", {}, TERMINAL.includes(s.status) ? s.status : "not finished yet"));
      return;
    }
    const rows = [["test accuracy", r.test_accuracy], ["test loss", r.test_loss], ["validation accuracy", r.val_accuracy],
      ["epochs", r.epochs_completed], ["training time", convlab.duration(r.train_seconds)], ["parameters", r.parameter_count]];
    dl.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, convlab.number(v))]));
    if (r.confusion_matrix && r.confusion_matrix.length) {
      const labels = r.confusion_matrix.map((_, i) => String(i));
      const table = convlab.heatTable(r.confusion_matrix, {diverging: false, labels, format: String});
      table.id = "confusion";
      table.classList.add("confusion");
      document.getElementById("confusion").replaceWith(table);
      document.getElementById("confusion-card").hidden = false;
    }
  }

  /** Draw each kernel W[f, c] as a tiny image, on one colour scale (blue −, red +). */
  async function showKernels() {
    kernelsShown = true;
    const data = await convlab.getJSON(main.dataset.kernels);
    if (!data) return;
    let peak = 0;
    for (const f of data.kernels) for (const c of f) for (const row of c) for (const v of row) peak = Math.max(peak, Math.abs(v));
    peak = peak || 1;
    const box = document.getElementById("kernels");
    box.replaceChildren();
    data.kernels.forEach((filter, fi) => filter.forEach((kernel, ci) => {
      const h = kernel.length, w = kernel[0].length;
      const canvas = el("canvas", {width: w, height: h, class: "kernel", title: "filter " + fi + ", channel " + ci});
      const ctx = canvas.getContext("2d");
      const img = ctx.createImageData(w, h);
      kernel.forEach((row, y) => row.forEach((v, x) => {
        const t = Math.min(1, Math.abs(v) / peak), i = 4 * (y * w + x);
        const [r, g, b] = v >= 0 ? [255, 255 - 200 * t, 255 - 210 * t] : [255 - 210 * t, 255 - 150 * t, 255];
        img.data.set([r, g, b, 255], i);
      }));
      ctx.putImageData(img, 0, 0);
      box.append(el("figure", {class: "kernel-fig"}, canvas, el("figcaption", {}, data.shape[1] > 1 ? fi + "." + ci : String(fi))));
    }));
    const [F, C, kh, kw] = data.shape;
    document.getElementById("kernels-caption").textContent =
      "layer " + data.layer + ": " + F + " filters × " + C + " channel(s), " + kh + "×" + kw + "; blue negative, red positive";
    document.getElementById("kernels-card").hidden = false;
  }

  function onJob(s) {
    showProgress(s);
    document.dispatchEvent(new CustomEvent("convlab:job", {detail: s}));     // for tryit.js
    if (isTrain) {
      showTrainResult(s);
      if (!kernelsShown && (s.status === "succeeded" || s.status === "cancelled")) showKernels();
    } else {
      convlab.renderGradcheck(document.getElementById("gc-report"), s);
      if (s.result && s.result.trace) {
        convlab.renderTrace(document.getElementById("trace"), s.result.trace);
        document.getElementById("trace-card").hidden = false;
      }
    }
  }

  const width = (document.getElementById("chart-loss") || main).clientWidth || 800;
  const maxPoints = Math.min(8000, Math.max(1000, 2 * width));   // about two points per pixel
  main.dataset.maxPoints = String(maxPoints);
  convlab.watchJob(main.dataset.events + "?max_points=" + maxPoints, {
    job: onJob,
    series: (m) => feed(m, "set"),
    points: (m) => feed(m, "append"),
    end: (m) => { main.dataset.ended = m.status || "gone"; },
  });
})();
