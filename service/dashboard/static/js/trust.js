/* The job page's trust cards (docs/trust.md): divergence triage, the reproducibility certificate
 * (both curves, their difference, the two environments) and the layer-health small multiples. */
"use strict";

(function () {
  const main = document.getElementById("main");
  const el = convlab.el;
  const TERMINAL = main.dataset.terminal.split(" ");
  const isTrain = main.dataset.jobType === "train";
  const HEALTH = ["weight_norm", "grad_norm", "update_ratio", "dead_relu"];
  let done = false;
  const shown = {triage: false, health: false};

  /** A value for people: numbers formatted, non-finite spellings ("nan", "inf") and null as they are. */
  function show(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "number") {
      const a = Math.abs(v);
      return a !== 0 && (a >= 1e5 || a < 1e-3) ? v.toExponential(3) : convlab.number(v);
    }
    if (Array.isArray(v)) return v.join(" ");
    return String(v);
  }

  function kv(dl, rows) {
    dl.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, show(v))]));
  }

  async function seriesOf(url, names) {
    const data = await convlab.getJSON(url + "?max_points=4000" + (names ? "&names=" + names.join(",") : ""));
    return (data && data.series) || {};
  }

  async function showTriage(t) {
    document.getElementById("triage-hint").textContent = t.hint;
    const gc = t.gradcheck || {};
    kv(document.getElementById("triage-facts"), [
      ["step", t.step], ["epoch", t.epoch], ["layer", t.layer + " (" + t.layer_type + ")"], ["phase", t.phase],
      ["non-finite", t.quantity + (t.param ? " " + t.param : "")], ["learning rate", t.learning_rate],
      ["gradient check at step " + show(gc.at_step),
        gc.passed === true ? "passed (max rel. error " + show(gc.max_relative_error) + ")"
          : gc.passed === false ? "FAILED (max rel. error " + show(gc.max_relative_error) + ")" : "not run"],
    ]);
    const layers = (t.history[0] || {layers: []}).layers.map((l) => l.layer);
    const head = el("tr", {}, el("th", {}, "step"), el("th", {}, "loss"),
      ...layers.flatMap((i) => ["act", "δ", "grad", "w"].map((q) => el("th", {}, "L" + i + " " + q))));
    const rows = t.history.map((r) => el("tr", {class: r.step === t.step ? "diverged" : null},
      el("td", {}, String(r.step)), el("td", {}, show(r.loss)),
      ...r.layers.flatMap((l) => [l.activation, l.delta, l.grad, l.weight].map((v) => el("td", {}, show(v))))));
    document.getElementById("triage-history").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
    document.getElementById("triage-card").hidden = false;
    // Mark the divergence on the loss chart at its last finite value.
    const loss = window.convlabCharts && window.convlabCharts["chart-loss"];
    if (loss) {
      const pts = (await seriesOf(main.dataset.series, ["train_loss"])).train_loss || [];
      const finite = pts.filter((p) => p[1] !== null);
      const y = finite.length ? finite[finite.length - 1][1] : 0;
      loss.set("diverged", [[t.step, y]]);
    }
  }

  async function showCertificate(c, original, environment) {
    document.getElementById("certificate-verdict").textContent = c.verdict;
    document.getElementById("certificate-verdict").className = "verdict-" + c.verdict;
    const first = c.first_difference;
    document.getElementById("certificate-summary").textContent =
      "largest difference " + show(c.max_abs_difference) + " (tolerance " + show(c.tolerance) + ")" +
      (first ? "; first parts at " + first.series + (first.step !== null ? " step " + first.step : "") : "") +
      (c.explaining_differences.length ? "; environment differs in " + c.explaining_differences.join(", ") : "");
    if (original) {
      document.getElementById("certificate-of").replaceChildren("of ",
        el("a", {href: "/jobs/" + original.id}, original.name + " (" + original.id.slice(0, 8) + ")"));
    }
    const a = (original && original.environment) || {}, b = environment || {};
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    const env = document.getElementById("certificate-env");
    env.replaceChildren(el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", {}, "original"), el("th", {}, "reproduction"))),
      el("tbody", {}, ...keys.map((k) => el("tr", {class: JSON.stringify(a[k]) !== JSON.stringify(b[k]) ? "differs" : null},
        el("th", {}, k), el("td", {}, show(a[k])), el("td", {}, show(b[k]))))));
    document.getElementById("certificate-card").hidden = false;
    if (!isTrain || !original) return;
    const overlay = new convlab.Chart(document.getElementById("chart-certificate"), [
      {name: "original", label: "original"}, {name: "reproduction", label: "reproduction", color: convlab.PALETTE[1]}],
      {yLabel: "loss", height: 200});
    const diff = new convlab.Chart(document.getElementById("chart-certificate-diff"), [
      {name: "difference", label: "difference", color: convlab.PALETTE[4]}], {yLabel: "Δ loss", height: 200});
    const [ours, theirs] = await Promise.all([seriesOf(main.dataset.series, ["train_loss"]),
      seriesOf(original.series, ["train_loss"])]);
    const o = theirs.train_loss || [], r = ours.train_loss || [];
    overlay.set("original", o);
    overlay.set("reproduction", r);
    const byStep = new Map(o.map((p) => [p[0], p[1]]));
    diff.set("difference", r.filter((p) => byStep.has(p[0])).map((p) =>
      [p[0], p[1] === null || byStep.get(p[0]) === null ? null : p[1] - byStep.get(p[0])]));
  }

  async function showHealth() {
    const series = await seriesOf(main.dataset.series);
    const names = Object.keys(series).filter((n) => n.startsWith("layers."));
    if (!names.length) return;
    document.getElementById("health-card").hidden = false;
    for (const metric of HEALTH) {
      const mine = names.filter((n) => n.endsWith("." + metric)).sort();
      const box = document.getElementById("chart-health-" + metric);
      if (!mine.length) { box.parentElement.hidden = true; continue; }
      const chart = new convlab.Chart(box, mine.map((n, i) => ({name: n, label: "layer " + n.split(".")[1],
        points: true, color: convlab.PALETTE[i % convlab.PALETTE.length]})),
      {xLabel: "step", yLabel: metric.replace("_", " "), height: 180, yRange: metric === "dead_relu" ? [0, 1] : null});
      for (const n of mine) chart.set(n, series[n]);
    }
  }

  async function load() {
    const data = await convlab.getJSON(main.dataset.trust);
    if (!data) return false;
    if (data.triage && !shown.triage) { shown.triage = true; await showTriage(data.triage); }
    if (data.certificate) await showCertificate(data.certificate, data.original, data.environment);
    if (isTrain && !shown.health) { shown.health = true; await showHealth(); }
    main.dataset.trustLoaded = data.reproduces && !data.certificate ? "waiting" : "1";
    return !data.reproduces || !!data.certificate;
  }

  document.addEventListener("convlab:job", async (e) => {
    if (done || !TERMINAL.includes(e.detail.status)) return;
    done = true;
    // A reproduction's certificate waits for the original too: ask again until it is there.
    while (!(await load())) await new Promise((resolve) => setTimeout(resolve, 2000));
  });
})();
