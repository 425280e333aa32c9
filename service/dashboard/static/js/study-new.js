/* The study form: edit the JSON (or add a dimension from the fields), see how many trials it makes,
 * start it; field errors come back with their paths. */
"use strict";

(function () {
  const main = document.getElementById("main");
  const text = document.getElementById("study-json");
  const count = document.getElementById("trial-count");
  const errors = document.getElementById("errors");

  function parse() {
    try { return JSON.parse(text.value); } catch (e) { return null; }
  }

  /** Trial jobs the study would make: a grid's size (or max_trials) × seeds; else max_trials × seeds. */
  function trials(study) {
    if (!study || typeof study.space !== "object") return null;
    const seeds = study.seeds || 1;
    if ((study.algorithm || "random") === "grid") {
      const size = Object.values(study.space).reduce((n, d) => n * ((d && d.values && d.values.length) || 0), 1);
      return Math.min(size, study.max_trials || size) * seeds;
    }
    return study.max_trials ? study.max_trials * seeds : null;
  }

  function update() {
    const study = parse();
    const n = trials(study);
    count.textContent = study === null ? "The JSON does not parse."
      : n === null ? "Set max_trials (random and tpe need it)." : `${n} trial job(s).`;
    count.dataset.trials = n === null ? "" : String(n);
  }

  function number(id) {
    const v = document.getElementById(id).value.trim();
    return v === "" ? null : Number(v);
  }

  document.getElementById("add-dim").addEventListener("click", () => {
    const study = parse();
    if (!study) { update(); return; }
    const path = document.getElementById("dim-path").value.trim();
    const type = document.getElementById("dim-type").value;
    let dim;
    if (type === "choice") {
      dim = {type, values: document.getElementById("dim-values").value.split(",").map((s) => s.trim()).filter(Boolean)
        .map((s) => (Number.isNaN(Number(s)) ? s : Number(s)))};
    } else {
      dim = {type, low: number("dim-low"), high: number("dim-high")};
      if (study.algorithm === "grid") { study.algorithm = "random"; study.max_trials = study.max_trials || 10; }
    }
    study.space = {...(study.space || {}), [path]: dim};
    text.value = JSON.stringify(study, null, 2);
    update();
  });

  text.addEventListener("input", update);
  update();

  // One Idempotency-Key per study text: a double click (or a retry) starts the study once.
  const keys = new Map();
  const keyFor = (t) => {
    if (!keys.has(t)) keys.set(t, crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2));
    return keys.get(t);
  };
  document.getElementById("study-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    errors.replaceChildren();
    const study = parse();
    if (!study) { errors.append(convlab.el("li", {}, "The JSON does not parse.")); return; }
    const button = document.getElementById("start-study");
    button.disabled = true;
    const {status, body} = await convlab.postJSON(main.dataset.post, study, {"Idempotency-Key": keyFor(text.value)});
    button.disabled = false;
    if (status === 201 && body) { window.location.assign(body.location); return; }
    const details = (body && body.error && body.error.details) || [];
    if (!details.length) errors.append(convlab.el("li", {}, (body && body.error && body.error.message) || `HTTP ${status}`));
    for (const d of details) errors.append(convlab.el("li", {}, convlab.el("code", {}, d.path || "(study)"), " ", d.message));
  });
})();
