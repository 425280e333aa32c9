/* Gradient-check reports and the backward-pass trace; a job's live event stream. */
"use strict";

/** Follow a job's Server-Sent Events: handlers.job(state), .series(msg), .points(msg), .end(msg). */
convlab.watchJob = function watchJob(url, handlers) {
  const source = new EventSource(url);
  for (const name of ["job", "series", "points"]) {
    source.addEventListener(name, (e) => handlers[name] && handlers[name](JSON.parse(e.data)));
  }
  let ended = false;
  source.addEventListener("end", (e) => {
    ended = true;
    source.close();         // the job is over: no reconnect
    if (handlers.end) handlers.end(JSON.parse(e.data));
  });
  // A reconnect answered 503 (database unreachable) closes an EventSource for good: start a new one later.
  source.addEventListener("error", () => {
    if (!ended && source.readyState === EventSource.CLOSED) setTimeout(() => watchJob(url, handlers), 5000);
  });
  return source;
};

/** The report of one gradcheck job state: verdict, then one row per parameter / layer input. */
convlab.renderGradcheck = function renderGradcheck(container, state) {
  const el = convlab.el;
  const r = state.result;
  container.dataset.status = state.status;
  if (!r) {
    const text = state.status === "failed" ? "The check did not run: " + (state.error || "failed")
      : state.status === "cancelled" ? "Cancelled before it ran."
      : state.status === "queued" ? "Queued" + (state.queue_position ? " (#" + state.queue_position + " in line)" : "") + "…"
      : "Running…";
    container.replaceChildren(el("p", {class: "muted"}, text));
    return;
  }
  container.dataset.passed = String(r.passed);
  const verdict = el("p", {class: "verdict " + (r.passed ? "pass" : "fail")},
    el("strong", {}, r.passed ? "PASS" : "FAIL"),
    " · rotate_kernels: " + r.rotate_kernels,
    " · max relative error " + convlab.number(r.max_relative_error),
    " · " + (r.failures || 0) + " failing entries · " + (r.kinks || 0) + " kinks skipped");
  const head = el("thead", {}, el("tr", {},
    ["layer", "parameter", "max relative error", "worst index", "kinks", "failing / checked"].map((h) => el("th", {}, h))));
  const body = el("tbody", {}, (r.layers || []).map((row) => el("tr", {class: row.failures ? "fail" : "pass"},
    el("td", {}, String(row.layer)),
    el("td", {class: "mono"}, row.param),
    el("td", {class: "num"}, convlab.number(row.max_relative_error)),
    el("td", {class: "mono"}, "[" + (row.worst_index || []).join(", ") + "]"),
    el("td", {class: "num"}, String(row.kinks ?? "–")),
    el("td", {class: "num"}, (row.failures ?? "–") + " / " + (row.checked ?? "–")))));
  const tolerance = r.tolerance ? el("p", {class: "muted small"},
    "An entry fails when its relative error ", convlab.math("\\frac{|a - n|}{|a| + |n|}"), " is above " + convlab.number(r.tolerance) +
    " and the difference is above the float64 noise floor; entries where a ±eps nudge crosses a ReLU or " +
    "max-pool kink are skipped.") : null;
  container.replaceChildren(verdict, el("div", {class: "table-wrap"}, el("table", {class: "gc"}, head, body)), tolerance);
};

/** TeX typeset by the vendored KaTeX (into DOM nodes: no inline HTML, so the CSP holds); the TeX as text without it. */
convlab.math = function math(tex, display = false) {
  const span = convlab.el("span", {class: "math", dataset: {tex}});
  if (window.katex) window.katex.render(tex, span, {throwOnError: false, displayMode: display});
  else span.textContent = tex;
  return span;
};

/** The backward pass of one conv layer, by hand: kernel, rotated kernel, deltas, weight gradient. */
convlab.renderTrace = function renderTrace(container, trace) {
  const el = convlab.el;
  const m = convlab.math;
  const fig = (key, title, matrix, note, extra = {}) => el("figure", {class: "matrix " + (extra.class || ""), dataset: {matrix: key}},
    convlab.heatTable(matrix, {format: (v) => convlab.number(v, 3)}), el("figcaption", {}, el("strong", {}, title), note ? el("br") : null, note || ""));
  const differs = trace.delta_out.map((row, i) => row.map((v, j) => v !== trace.delta_out_unrotated[i][j]));
  const wrong = fig("delta_out_unrotated", [m("\\delta^{l-1}"), " without the rotation"], trace.delta_out_unrotated,
    "what rotate_kernels: false computes: wrong wherever the kernel is not symmetric", {class: "wrong"});
  wrong.querySelectorAll("tbody tr").forEach((tr, i) => tr.querySelectorAll("td").forEach((td, j) => {
    if (differs[i][j]) td.classList.add("differs");
  }));
  container.replaceChildren(
    el("p", {}, "The forward pass correlates the input with the kernel: ", m("z^{l} = a^{l-1} \\star w^{l} + b^{l}"),
      ". Each input pixel's error collects the deltas it influenced, each weighted by the kernel entry that " +
      "connected them; walked from the input's side, those entries come in reverse order in both directions: the kernel turned by 180°."),
    el("div", {class: "trace-row"},
      fig("kernel", ["kernel ", m("w")], trace.kernel, "as the forward pass uses it"),
      el("div", {class: "arrow", "aria-hidden": "true"}, "↻ 180°"),
      fig("rotated", m("\\operatorname{rot180}(w)"), trace.kernel_rotated, "flipped up–down and left–right")),
    el("div", {class: "trace-row"},
      fig("delta_in", m("\\delta^{l}"), trace.delta_in, "the error arriving at the layer's output"),
      el("div", {class: "arrow", "aria-hidden": "true"}, "pad →"),
      fig("delta_in_padded", [m("\\delta^{l}"), ", padded"], trace.delta_in_padded,
        "zero-padded (and dilated by the stride) for the full convolution")),
    el("div", {class: "trace-row"},
      fig("delta_out", m("\\delta^{l-1} = \\delta^{l} \\ast_{\\text{full}} \\operatorname{rot180}(w)"), trace.delta_out,
        m("\\delta^{l-1} = \\bigl(\\delta^{l} \\ast_{\\text{full}} \\operatorname{rot180}(w^{l})\\bigr) \\odot \\sigma'(z^{l-1})"),
        {class: "right"}),
      wrong),
    el("div", {class: "trace-row"},
      fig("input", ["input ", m("a^{l-1}")], trace.input, "stride " + trace.stride + ", padding " + trace.padding),
      fig("weight_gradient", m("\\frac{\\partial C}{\\partial w^{l}} = a^{l-1} \\star \\delta^{l}"), trace.weight_gradient,
        "the weight gradient: no rotation here")));
};
