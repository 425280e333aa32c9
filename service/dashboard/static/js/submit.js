/* Submit: a template (or a cloned job's spec) in a generated form and a JSON editor kept in
 * sync; the post answers 422 with field paths, shown next to the field each one names.
 * The form is a builder: vocabularies are drop-downs, layers can be added, moved and removed,
 * and the model summary (the server's, computed by the validator's code) follows every change,
 * with the layer whose shape does not fit marked. */
"use strict";

(function () {
  const main = document.getElementById("main");
  const el = convlab.el;
  const editor = document.getElementById("spec-json");
  const formBox = document.getElementById("spec-form");
  const status = document.getElementById("json-status");
  const errorList = document.getElementById("errors");
  const templates = JSON.parse(main.dataset.templates || "[]");
  const initial = main.dataset.initial ? JSON.parse(main.dataset.initial) : null;
  const choices = JSON.parse(main.dataset.choices || "{}");
  const summaryBox = document.getElementById("summary");
  const summaryStatus = document.getElementById("summary-status");
  let current = null;       // the spec (or array of specs) being edited; null while the JSON does not parse

  // --- paths as the API names them: model.layers[0].kernel, [1].gradcheck.rotate_kernels -----------
  const join = (base, key) => (typeof key === "number" ? base + "[" + key + "]" : base ? base + "." + key : key);
  function tokens(path) {
    return [...path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] !== undefined ? Number(m[2]) : m[1]));
  }
  function setAt(root, path, value) {
    const keys = tokens(path);
    let node = root;
    for (const k of keys.slice(0, -1)) node = node[k];
    node[keys[keys.length - 1]] = value;
  }
  /** Path and its ancestors, longest first: a.b[0].c, a.b[0], a.b, a. */
  function ancestors(path) {
    const out = [path];
    while (path) {
      const cut = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
      path = cut > 0 ? path.slice(0, cut) : "";
      if (path) out.push(path);
    }
    return out;
  }

  // --- the form, generated from the spec -----------------------------------------------------------
  /** The drop-down values of a field, by its path ([{value, label}]), or null for free input. */
  function choicesFor(path) {
    const list = (xs) => (xs || []).map((v) => (typeof v === "string" ? {value: v, label: v} : v));
    if (/^(\[\d+\]\.)?type$/.test(path)) return list(choices.job_type);
    if (/layers\[\d+\]\.type$/.test(path)) return list(choices.layer_type);
    if (/\.activation$/.test(path)) return list(choices.activation);
    if (/model\.loss$/.test(path)) return list(choices.loss);
    if (/optimizer\.type$/.test(path)) return list(choices.optimizer);
    if (/train\.dtype$/.test(path)) return list(choices.dtype);
    if (/data\.dataset$/.test(path)) return list(choices.dataset);
    return null;
  }
  let fieldCount = 0;
  function scalarField(path, key, value) {
    const id = "f" + fieldCount++;
    let input;
    const options = typeof value === "string" ? choicesFor(path) : null;
    if (options) {
      // A value outside the list (a typo in the JSON, a dataset of another user) stays visible, and invalid.
      const all = options.some((o) => o.value === value) ? options : [{value, label: value + " (unknown)"}, ...options];
      input = el("select", {id, dataset: {path, kind: "choice"}},
        all.map((o) => el("option", {value: o.value, selected: o.value === value}, o.label)));
    } else if (typeof value === "boolean") {
      input = el("input", {type: "checkbox", id, checked: value, dataset: {path, kind: "boolean"}});
    } else if (Array.isArray(value)) {
      const kind = value.length && value.every((v) => typeof v === "number") ? "numbers" : "strings";
      input = el("input", {type: "text", id, value: value.join(", "), dataset: {path, kind}, placeholder: "comma-separated"});
    } else {
      const kind = typeof value === "number" ? "number" : "string";
      input = el("input", {type: "text", id, value: value === null ? "" : String(value), dataset: {path, kind},
        inputmode: kind === "number" ? "decimal" : null, autocomplete: "off"});
    }
    return el("div", {class: "field" + (typeof value === "boolean" ? " check" : ""), dataset: {field: path}},
      el("label", {for: id}, String(key)), input);
  }
  const isLayers = (path) => /(^|\.)model\.layers$/.test(path);
  function layerTools(path, i, count) {
    const tool = (action, text, label, disabled) =>
      el("button", {type: "button", class: "tool", dataset: {action, list: path, index: String(i)},
                    "aria-label": label + " layer " + i, title: label, disabled}, text);
    return el("span", {class: "layer-tools"}, tool("up", "↑", "move up", i === 0),
      tool("down", "↓", "move down", i === count - 1), tool("remove", "✕", "remove", count === 1));
  }
  function addLayerControl(path) {
    const id = "f" + fieldCount++;
    return el("div", {class: "add-layer"},
      el("label", {for: id}, "New layer"),
      el("select", {id, class: "new-layer-type"}, (choices.layer_type || []).map((t) => el("option", {value: t}, t))),
      el("button", {type: "button", class: "tool", dataset: {action: "add", list: path}}, "Add layer"));
  }
  function build(value, path, key) {
    if (Array.isArray(value) && value.some((v) => v !== null && typeof v === "object")) {
      const items = value.map((item, i) => {
        const label = (path ? key + "[" + i + "]" : "spec " + (i + 1)) + (item && item.type ? " · " + item.type : "");
        return el("fieldset", {dataset: {field: join(path, i)}, class: isLayers(path) ? "layer" : null},
          el("legend", {}, label, isLayers(path) ? layerTools(path, i, value.length) : null),
          build(item, join(path, i), i));
      });
      return isLayers(path) ? [...items, addLayerControl(path)] : items;
    }
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      return Object.entries(value).map(([k, v]) => {
        const p = join(path, k);
        if (v !== null && typeof v === "object" && !(Array.isArray(v) && !v.some((x) => x !== null && typeof x === "object"))) {
          return el("fieldset", {dataset: {field: p}}, el("legend", {}, k), build(v, p, k));
        }
        return scalarField(p, k, v);
      });
    }
    return [scalarField(path, key, value)];
  }
  function renderForm() {
    fieldCount = 0;
    formBox.replaceChildren(...(current === null ? [el("p", {class: "muted"}, "Fix the JSON to edit it here.")]
      : [].concat(build(current, "", null))));
  }
  function readInput(input) {
    const raw = input.value.trim();
    const asNumber = (s) => (s !== "" && !Number.isNaN(Number(s)) ? Number(s) : s);
    switch (input.dataset.kind) {
      case "choice": return input.value;
      case "boolean": return input.checked;
      case "number": return asNumber(raw);
      case "numbers": return raw ? raw.split(",").map((s) => asNumber(s.trim())) : [];
      case "strings": return raw ? raw.split(",").map((s) => s.trim()).filter(Boolean) : [];
      default: return input.value;
    }
  }
  function getAt(root, path) {
    return tokens(path).reduce((node, k) => (node === null || node === undefined ? node : node[k]), root);
  }
  /** After a change of the spec's structure: the JSON, the form and the summary follow. */
  function restructured() {
    editor.value = JSON.stringify(current, null, 2);
    renderForm();
    scheduleSummary();
  }
  formBox.addEventListener("input", (e) => {
    const path = e.target.dataset.path;
    if (!path || current === null) return;
    const value = readInput(e.target);
    const clone = (x) => JSON.parse(JSON.stringify(x));
    if (/layers\[\d+\]\.type$/.test(path) && choices.layer_defaults && choices.layer_defaults[value]) {
      // Another type of layer has other fields: start it from valid values, keeping its activation.
      const layerPath = path.slice(0, -".type".length);
      const old = getAt(current, layerPath) || {};
      const layer = clone(choices.layer_defaults[value]);
      if ("activation" in layer && old.activation) layer.activation = old.activation;
      setAt(current, layerPath, layer);
      restructured();
      return;
    }
    if (/optimizer\.type$/.test(path) && choices.optimizer_defaults && choices.optimizer_defaults[value]) {
      setAt(current, path.slice(0, -".type".length), clone(choices.optimizer_defaults[value]));
      restructured();
      return;
    }
    setAt(current, path, value);
    editor.value = JSON.stringify(current, null, 2);
    clearErrorFor(path);
    scheduleSummary();
  });
  formBox.addEventListener("click", (e) => {
    const button = e.target.closest("button[data-action]");
    if (!button || current === null) return;
    const layers = getAt(current, button.dataset.list);
    if (!Array.isArray(layers)) return;
    const i = Number(button.dataset.index);
    const action = button.dataset.action;
    if (action === "up" && i > 0) layers.splice(i - 1, 0, ...layers.splice(i, 1));
    else if (action === "down" && i < layers.length - 1) layers.splice(i + 1, 0, ...layers.splice(i, 1));
    else if (action === "remove" && layers.length > 1) layers.splice(i, 1);
    else if (action === "add") {
      const type = button.parentElement.querySelector(".new-layer-type").value;
      const layer = JSON.parse(JSON.stringify((choices.layer_defaults || {})[type] || {type}));
      // The output layer stays last: a new layer goes before it.
      const last = layers[layers.length - 1];
      const at = last && last.type === "dense" && type !== "dense" ? layers.length - 1 : layers.length;
      layers.splice(at, 0, layer);
    } else return;
    restructured();
  });

  // --- the model summary, as you type ---------------------------------------------------------------
  let summaryTimer = null;
  let summarySeq = 0;
  function scheduleSummary() {
    clearTimeout(summaryTimer);
    summaryTimer = setTimeout(refreshSummary, 250);
  }
  const fmtInt = (v) => (v === null || v === undefined ? "–" : v.toLocaleString("en-US"));
  const fmtShape = (s) => (s ? s.join("×") : "–");
  function fmtBytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }
  async function refreshSummary() {
    const spec = Array.isArray(current) ? current[0] : current;
    if (spec === null || spec === undefined) {
      summaryStatus.textContent = "Fix the JSON to see the summary.";
      return;
    }
    const seq = ++summarySeq;
    const {status: code, body} = await convlab.postJSON(main.dataset.summary, spec);
    if (seq !== summarySeq) return;         // an answer to an older edit
    if (code !== 200 || !body) {
      summaryStatus.textContent = "No summary (HTTP " + code + ").";
      return;
    }
    renderSummary(body, Array.isArray(current));
  }
  function renderSummary(s, batch) {
    formBox.querySelectorAll("fieldset.layer.bad").forEach((f) => f.classList.remove("bad"));
    const head = el("tr", {}, ["#", "layer", "output", "parameters", "mult-adds", "memory / batch"]
      .map((h) => el("th", {scope: "col"}, h)));
    const rows = [el("tr", {}, el("td"), el("td", {}, "input"), el("td", {}, fmtShape(s.input_shape)),
      el("td"), el("td"), el("td"))];
    for (const r of s.layers) {
      const bad = r.errors.length > 0;
      rows.push(el("tr", {class: bad ? "bad" : null, dataset: {layer: String(r.index)}, "aria-invalid": bad ? "true" : null},
        el("td", {}, String(r.index)),
        el("td", {}, r.type || "?", bad ? r.errors.map((e) => el("div", {class: "field-error"}, e.message)) : null),
        el("td", {}, fmtShape(r.output_shape)), el("td", {class: "num"}, fmtInt(r.parameters)),
        el("td", {class: "num"}, fmtInt(r.multiply_adds)), el("td", {class: "num"}, fmtBytes(r.memory_bytes))));
      const fieldset = formBox.querySelector('fieldset.layer[data-field="' + CSS.escape(r.path) + '"]');
      if (bad && fieldset) fieldset.classList.add("bad");
    }
    const t = s.totals;
    rows.push(el("tr", {class: "total"}, el("td"), el("td", {}, t.complete ? "total" : "total (incomplete)"), el("td"),
      el("td", {class: "num"}, fmtInt(t.parameters)), el("td", {class: "num"}, fmtInt(t.multiply_adds)),
      el("td", {class: "num"}, fmtBytes(t.memory_bytes))));
    rows.push(el("tr", {class: "limits muted"}, el("td"), el("td", {}, "limits"), el("td"),
      el("td", {class: "num"}, fmtInt(s.limits.max_parameters)), el("td"),
      el("td", {class: "num"}, fmtBytes(s.limits.max_batch_memory_bytes))));
    summaryBox.replaceChildren(el("table", {class: "summary"}, el("thead", {}, head), el("tbody", {}, rows)));
    const run = (s.batch_size ? "batch of " + s.batch_size : "per sample") + ", " + s.dtype;
    const others = s.errors.filter((e) => !/^model\.layers\[\d+\]/.test(e.path));
    summaryStatus.replaceChildren(
      (s.valid ? "Valid. " : s.errors.length + " problem(s). ") + "Mult-adds per sample; memory for one " + run +
      " (the total adds 4 copies of the parameters)." + (batch ? " The first spec of the batch." : ""),
      ...(others.length ? [el("ul", {class: "errors"}, others.map((e) =>
        el("li", {}, e.path ? el("code", {}, e.path) : null, e.path ? ": " : "", e.message)))] : []));
  }

  // --- the JSON editor ------------------------------------------------------------------------------
  function load(spec) {
    current = JSON.parse(JSON.stringify(spec));
    editor.value = JSON.stringify(current, null, 2);
    status.textContent = "";
    clearErrors();
    renderForm();
    scheduleSummary();
  }
  let typing = null;
  editor.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      try {
        current = JSON.parse(editor.value);
        status.textContent = "";
        editor.removeAttribute("aria-invalid");
        scheduleSummary();
      } catch (err) {
        current = null;
        status.textContent = "JSON syntax error: " + err.message;
        editor.setAttribute("aria-invalid", "true");
      }
      renderForm();
    }, 200);
  });

  // --- errors next to their fields ------------------------------------------------------------------
  function clearErrors() {
    document.querySelectorAll(".field-error").forEach((n) => n.remove());
    document.querySelectorAll("[aria-invalid]").forEach((n) => n.removeAttribute("aria-invalid"));
    errorList.replaceChildren();
  }
  function clearErrorFor(path) {
    document.querySelectorAll(".field-error").forEach((n) => { if (n.dataset.errorFor === path) n.remove(); });
  }
  function showErrors(error) {
    clearErrors();
    const details = error.details && error.details.length ? error.details : [{path: "", message: error.message}];
    let first = null;
    for (const d of details) {
      const target = ancestors(d.path || "").map((p) => formBox.querySelector('[data-field="' + CSS.escape(p) + '"]')).find(Boolean);
      const note = el("p", {class: "field-error", role: "alert", dataset: {errorFor: d.path || ""}}, d.message);
      if (target) {
        if (target.dataset.field !== d.path) note.prepend(el("code", {}, d.path), ": ");
        if (target.tagName === "FIELDSET") target.querySelector("legend").after(note); else target.append(note);
        const input = target.querySelector("input");
        if (input) input.setAttribute("aria-invalid", "true");
        first = first || target;
      }
      errorList.append(el("li", {}, d.path ? el("code", {}, d.path) : null, d.path ? ": " : "", d.message));
    }
    status.textContent = error.message;
    if (first) first.scrollIntoView({block: "center"});
  }

  // One Idempotency-Key per spec text: submitting the same text again after a failed or lost
  // answer (503, network error) returns the job the first try created instead of a second one.
  let idempotency = null;
  const keyFor = (text) => {
    if (!idempotency || idempotency.text !== text) {
      const bytes = crypto.getRandomValues(new Uint8Array(16));      // randomUUID needs HTTPS
      idempotency = {text, key: Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")};
    }
    return idempotency.key;
  };

  document.getElementById("submit-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    clearTimeout(typing);
    try { current = JSON.parse(editor.value); } catch (err) {
      status.textContent = "JSON syntax error: " + err.message;
      return;
    }
    const button = document.getElementById("submit-button");
    button.disabled = true;
    try {
      const {status: code, body} = await convlab.postJSON(main.dataset.post, current,
                                                          {"Idempotency-Key": keyFor(editor.value)});
      if (code === 201 && body) { window.location.assign(body.location); return; }
      showErrors((body && body.error) || {message: "Submitting failed (HTTP " + code + ")", details: []});
    } finally {
      button.disabled = false;
    }
  });

  // --- templates ------------------------------------------------------------------------------------
  const pick = (key) => {
    const t = key === "initial" ? {spec: initial} : templates.find((x) => x.key === key);
    if (!t) return;
    load(t.spec);
    document.querySelectorAll("button.template").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.template === key)));
  };
  document.querySelectorAll("button.template").forEach((b) => b.addEventListener("click", () => pick(b.dataset.template)));
  pick(initial ? "initial" : (templates.some((t) => t.key === main.dataset.template) ? main.dataset.template : (templates[0] || {}).key));
})();
