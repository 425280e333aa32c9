/* Line charts on uPlot (served from /assets/vendor; no CDN).  A chart holds named series of
 * [step, value] points that may each have their own steps; they are aligned with uPlot.join. */
"use strict";

window.convlabCharts = window.convlabCharts || {};
convlab.PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

convlab.Chart = class Chart {
  /**
   * container: an element (its id names the chart in window.convlabCharts);
   * series: [{name, label, color, points: bool (draw dots: sparse series such as per-epoch ones)}];
   * options: {xLabel, yLabel, height, yRange: [lo, hi] | null}.
   */
  constructor(container, series, {xLabel = "step", yLabel = "", height = 260, yRange = null} = {}) {
    this.container = container;
    this.series = series;
    this.data = new Map(series.map((s) => [s.name, {xs: [], ys: []}]));
    this.options = {xLabel, yLabel, height, yRange};
    this.plot = null;
    this.pending = false;
    window.convlabCharts[container.id] = this;
    new ResizeObserver(() => this.plot && this.plot.setSize(this.size())).observe(container);
    this.schedule();        // axes at once; the points come later
  }

  size() {
    return {width: Math.max(240, this.container.clientWidth), height: this.options.height};
  }

  /** Replace a series with points [[step, value], ...]. */
  set(name, points) {
    this.data.set(name, {xs: points.map((p) => p[0]), ys: points.map((p) => p[1])});
    this.schedule();
  }

  /** Add points after the last step of a series. */
  append(name, points) {
    const d = this.data.get(name) || {xs: [], ys: []};
    const last = d.xs.length ? d.xs[d.xs.length - 1] : -Infinity;
    for (const [x, y] of points) if (x > last) { d.xs.push(x); d.ys.push(y); }
    this.data.set(name, d);
    this.schedule();
  }

  /** Points held in all series (also kept in data-points for tests and people). */
  count() {
    let n = 0;
    for (const d of this.data.values()) n += d.xs.length;
    return n;
  }

  /** Count now, draw at the next frame (a hidden tab draws when it is shown again). */
  schedule() {
    this.container.dataset.points = String(this.count());
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.render(); });
  }

  aligned() {
    const tables = this.series.map((s) => {
      const d = this.data.get(s.name);
      return [d.xs, d.ys];
    });
    return uPlot.join(tables);
  }

  render() {
    const data = this.aligned();
    if (this.plot) {
      this.plot.setData(data);
      return;
    }
    const axis = {stroke: "#475569", grid: {stroke: "#e2e8f0"}, ticks: {stroke: "#e2e8f0"}};
    this.plot = new uPlot({
      ...this.size(),
      scales: {x: {time: false}, y: this.options.yRange ? {range: this.options.yRange} : {}},
      axes: [{...axis, label: this.options.xLabel}, {...axis, label: this.options.yLabel, size: 56}],
      legend: {live: true},
      cursor: {drag: {x: true, y: false}},
      series: [{label: this.options.xLabel}, ...this.series.map((s, i) => ({
        label: s.label,
        stroke: s.color || convlab.PALETTE[i % convlab.PALETTE.length],
        width: s.points ? 2 : 1.5,
        points: {show: !!s.points, size: 6},
        value: (u, v) => convlab.number(v),
      }))],
    }, data, this.container);
  }
};
