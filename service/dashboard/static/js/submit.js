/* Submit: a template (or a cloned job's spec) in a generated form and a JSON editor kept in
 * sync; the post answers 422 with field paths, shown next to the field each one names. */
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
  let fieldCount = 0;
  function scalarField(path, key, value) {
    const id = "f" + fieldCount++;
    let input;
    if (typeof value === "boolean") {
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
  function build(value, path, key) {
    if (Array.isArray(value) && value.some((v) => v !== null && typeof v === "object")) {
      return value.map((item, i) => {
        const label = (path ? key + "[" + i + "]" : "spec " + (i + 1)) + (item && item.type ? " · " + item.type : "");
        return el("fieldset", {dataset: {field: join(path, i)}}, el("legend", {}, label), build(item, join(path, i), i));
      });
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
      case "boolean": return input.checked;
      case "number": return asNumber(raw);
      case "numbers": return raw ? raw.split(",").map((s) => asNumber(s.trim())) : [];
      case "strings": return raw ? raw.split(",").map((s) => s.trim()).filter(Boolean) : [];
      default: return input.value;
    }
  }
  formBox.addEventListener("input", (e) => {
    if (!e.target.dataset.path || current === null) return;
    setAt(current, e.target.dataset.path, readInput(e.target));
    editor.value = JSON.stringify(current, null, 2);
    clearErrorFor(e.target.dataset.path);
  });

  // --- the JSON editor ------------------------------------------------------------------------------
  function load(spec) {
    current = JSON.parse(JSON.stringify(spec));
    editor.value = JSON.stringify(current, null, 2);
    status.textContent = "";
    clearErrors();
    renderForm();
  }
  let typing = null;
  editor.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      try {
        current = JSON.parse(editor.value);
        status.textContent = "";
        editor.removeAttribute("aria-invalid");
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
