/* Gradient-check reports side by side, each live from its job's event stream. */
"use strict";

(function () {
  let traced = false;
  document.querySelectorAll(".gc-report[data-events]").forEach((box) => {
    const badge = box.closest("section").querySelector(".job-status");
    convlab.watchJob(box.dataset.events, {
      job: (s) => {
        badge.replaceChildren(convlab.statusBadge(s.status));
        convlab.renderGradcheck(box, s);
        if (!traced && s.result && s.result.trace) {
          traced = true;        // the same model and seed give the same trace: show it once
          convlab.renderTrace(document.getElementById("trace"), s.result.trace);
          document.getElementById("trace-card").hidden = false;
        }
      },
    });
  });
})();
