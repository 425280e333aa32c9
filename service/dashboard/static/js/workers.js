/* The workers table, refreshed every 2 s. */
"use strict";

(function () {
  const main = document.getElementById("main");
  const el = convlab.el;
  convlab.every(2000, async () => {
    const data = await convlab.getJSON(main.dataset.feed);
    if (!data) return;
    document.getElementById("workers-body").replaceChildren(...data.workers.map((w) => el("tr", {},
      el("td", {class: "mono"}, w.name),
      el("td", {}, w.heartbeat_age_s.toFixed(1) + " s ago"),
      el("td", {}, w.job_id
        ? el("a", {class: "mono", href: main.dataset.jobUrl.replace("JOB_ID", encodeURIComponent(w.job_id))}, w.job_id.slice(0, 8))
        : el("span", {class: "muted"}, w.busy ? "another user's job" : "idle")))));
    document.getElementById("no-workers").hidden = data.workers.length > 0;
  });
})();
