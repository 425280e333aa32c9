/* The job page's "try it" panel (docs/predictions.md): draw on the pad (mouse, pen or finger) or drop
 * an image; the drawing is cropped to its ink, fitted and centred as the dataset's images are, sent
 * as a PNG to the job's predict route, and the probabilities come back as bars, live (debounced).
 * Below it, the test images the network gets wrong; clicking one puts it on the pad. */
"use strict";

(function () {
  const card = document.getElementById("tryit-card");
  if (!card) return;
  const el = convlab.el;
  const [C, H, W] = card.dataset.inputShape.split(" ").map(Number);
  const FIT = Number(card.dataset.fit);
  const K = Math.max(1, Math.ceil(112 / Math.max(H, W)));   // the PNG sent is K×K cells per input pixel
  const pad = document.getElementById("tryit-pad");
  const ctx = pad.getContext("2d", {willReadFrequently: true});
  const seen = document.getElementById("tryit-seen");
  const DEBOUNCE_MS = 120;
  let last = null, timer = null, busy = false, again = false, shown = false;
  let raw = null;           // a gallery image on the pad: sent as it is, not refitted

  function clear() {
    raw = null;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, pad.width, pad.height);
    seen.getContext("2d").clearRect(0, 0, seen.width, seen.height);
    document.getElementById("tryit-prediction").textContent = "–";
    document.querySelector("#tryit-probs tbody").replaceChildren();
    card.dataset.predicted = "";
    delete card.dataset.pending;
    showError(null);
  }

  function showError(message) {
    const box = document.getElementById("tryit-error");
    box.hidden = !message;
    box.textContent = message || "";
  }

  // --- drawing ----------------------------------------------------------------------------------
  function at(event) {
    const r = pad.getBoundingClientRect();
    return [(event.clientX - r.left) * pad.width / r.width, (event.clientY - r.top) * pad.height / r.height];
  }

  function stroke(from, to) {
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = pad.width / 9;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(from[0], from[1]);
    ctx.lineTo(to[0], to[1]);
    ctx.stroke();
  }

  pad.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    pad.setPointerCapture(e.pointerId);
    raw = null;
    last = at(e);
    stroke(last, last);
    schedule();
  });
  pad.addEventListener("pointermove", (e) => {
    if (last === null) return;
    const p = at(e);
    stroke(last, p);
    last = p;
    schedule();
  });
  for (const type of ["pointerup", "pointercancel"]) pad.addEventListener(type, () => { last = null; schedule(); });
  document.getElementById("tryit-clear").addEventListener("click", clear);

  // --- images -----------------------------------------------------------------------------------
  async function loadFile(file) {
    let bitmap;
    try {
      bitmap = await createImageBitmap(file);
    } catch (e) {
      showError("That file is not an image this browser can read.");
      return;
    }
    clear();
    const scale = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
    const w = bitmap.width * scale, h = bitmap.height * scale;
    ctx.drawImage(bitmap, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    // The datasets are light ink on black: a photo of dark ink on paper is inverted first.
    const img = ctx.getImageData(0, 0, pad.width, pad.height);
    const edge = [];
    for (let x = 0; x < pad.width; x += 4) edge.push(luma(img.data, x, Math.round((pad.height - h) / 2)),
      luma(img.data, x, Math.round((pad.height + h) / 2) - 1));
    if (edge.reduce((a, b) => a + b, 0) / edge.length > 127) {
      for (let i = 0; i < img.data.length; i += 4) for (let k = 0; k < 3; k++) img.data[i + k] = 255 - img.data[i + k];
      ctx.putImageData(img, 0, 0);
    }
    raw = null;
    send();
  }
  function luma(data, x, y) {
    const i = 4 * (Math.max(0, Math.min(pad.height - 1, y)) * pad.width + x);
    return 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
  }
  pad.addEventListener("dragover", (e) => { e.preventDefault(); pad.classList.add("drop"); });
  pad.addEventListener("dragleave", () => pad.classList.remove("drop"));
  pad.addEventListener("drop", (e) => {
    e.preventDefault();
    pad.classList.remove("drop");
    if (e.dataTransfer.files.length) loadFile(e.dataTransfer.files[0]);
  });
  document.getElementById("tryit-file").addEventListener("change", (e) => {
    if (e.target.files.length) loadFile(e.target.files[0]);
    e.target.value = "";
  });

  // --- the input the network gets ----------------------------------------------------------------
  /** The pad as a (W·K)×(H·K) canvas: the ink's box scaled so its longer side fills FIT of the input,
   *  centred (as the dataset's digits are); a gallery image (raw) is only scaled. Null without ink. */
  function prepared() {
    const img = ctx.getImageData(0, 0, pad.width, pad.height).data;
    let x0 = pad.width, y0 = pad.height, x1 = -1, y1 = -1;
    for (let y = 0; y < pad.height; y++) {
      for (let x = 0; x < pad.width; x++) {
        const i = 4 * (y * pad.width + x);
        if (Math.max(img[i], img[i + 1], img[i + 2]) > 24) {
          if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
        }
      }
    }
    if (x1 < 0) return null;
    const out = el("canvas", {width: W * K, height: H * K});
    const octx = out.getContext("2d");
    octx.fillStyle = "#000";
    octx.fillRect(0, 0, out.width, out.height);
    octx.imageSmoothingQuality = "high";
    if (raw) {
      octx.imageSmoothingEnabled = false;       // each input pixel becomes exactly K×K cells: the resize undoes it
      octx.drawImage(raw, 0, 0, out.width, out.height);
    } else {
      const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
      const s = FIT * Math.min(out.width / bw, out.height / bh);
      octx.drawImage(pad, x0, y0, bw, bh, (out.width - bw * s) / 2, (out.height - bh * s) / 2, bw * s, bh * s);
    }
    preview(octx.getImageData(0, 0, out.width, out.height).data);
    return out.toDataURL("image/png");
  }

  /** Draw what the server will compute: the mean of each K×K block (its area resize), luma for one channel. */
  function preview(data) {
    const sctx = seen.getContext("2d");
    const img = sctx.createImageData(W, H);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const sum = [0, 0, 0];
        for (let dy = 0; dy < K; dy++) for (let dx = 0; dx < K; dx++) {
          const i = 4 * ((y * K + dy) * W * K + x * K + dx);
          for (let k = 0; k < 3; k++) sum[k] += data[i + k];
        }
        let rgb = sum.map((v) => v / (K * K));
        if (C === 1) rgb = Array(3).fill(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]);
        img.data.set([...rgb, 255], 4 * (y * W + x));
      }
    }
    sctx.putImageData(img, 0, 0);
  }

  function schedule() {
    clearTimeout(timer);
    card.dataset.pending = "true";          // until the answer to the last stroke is shown (tests wait on it)
    timer = setTimeout(send, DEBOUNCE_MS);
  }

  /** One request at a time; strokes made meanwhile are sent when it returns. */
  async function send() {
    timer = null;
    if (busy) { again = true; return; }
    const input = prepared();
    if (!input) { idle(); return; }
    busy = true;
    try {
      const {status, body} = await convlab.postJSON(card.dataset.predict, {inputs: [input]});
      if (status === 200) showProbabilities(body.probabilities[0], body.predictions[0]);
      else showError((body && body.error && (body.error.details[0] || body.error).message) || "prediction failed (" + status + ")");
    } catch (e) {
      showError("The service did not answer; try again.");
    } finally {
      busy = false;
    }
    if (again) { again = false; send(); } else idle();
  }

  function idle() {
    if (timer === null && !busy) delete card.dataset.pending;
  }

  function showProbabilities(probs, predicted) {
    showError(null);
    document.getElementById("tryit-prediction").textContent = String(predicted);
    const rows = probs.map((p, k) => el("tr", {class: k === predicted ? "top" : null, dataset: {class: String(k)}},
      el("th", {scope: "row"}, String(k)),
      el("td", {}, el("progress", {max: "1", value: String(Math.max(0, Math.min(1, p)))})),
      el("td", {class: "num"}, (100 * p).toFixed(1) + "%")));
    document.querySelector("#tryit-probs tbody").replaceChildren(...rows);
    card.dataset.predicted = String(predicted);
    card.dataset.requests = String(Number(card.dataset.requests || 0) + 1);
  }

  // --- the gallery of mistakes --------------------------------------------------------------------
  function thumbnail(pixels) {
    const canvas = el("canvas", {width: W, height: H, class: "thumb"});
    const c = canvas.getContext("2d");
    const img = c.createImageData(W, H);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      const rgb = [0, 1, 2].map((k) => Math.round(255 * pixels[C === 1 ? 0 : k][y][x]));
      img.data.set([...rgb, 255], 4 * (y * W + x));
    }
    c.putImageData(img, 0, 0);
    return canvas;
  }

  function showMistakes(data) {
    const box = document.getElementById("mistakes");
    document.getElementById("mistakes-caption").textContent = data.wrong
      ? data.wrong + " of " + data.tested + " (showing " + data.images.length + ", most confident first): true → predicted"
      : "none of the " + data.tested + " test images";
    box.replaceChildren(...data.images.map((m) => {
      const thumb = thumbnail(m.pixels);
      const fig = el("button", {type: "button", class: "mistake", title: "true " + m.label + ", predicted " + m.predicted +
        " (" + (100 * m.confidence).toFixed(0) + "%): click to try it", dataset: {label: m.label, predicted: m.predicted}},
        thumb, el("span", {}, m.label + " → " + m.predicted));
      fig.addEventListener("click", () => {
        clear();
        ctx.imageSmoothingEnabled = false;
        ctx.drawImage(thumb, 0, 0, pad.width, pad.height);
        raw = thumb;
        send();
        pad.scrollIntoView({block: "nearest"});
      });
      return fig;
    }));
    box.dataset.loaded = "true";
  }

  /** Shown once the job has weights: a succeeded job has them; a cancelled one if it had started
   *  (then its gallery answers).  The gallery may take seconds (the dataset is loaded), the pad not. */
  document.addEventListener("convlab:job", async (e) => {
    const s = e.detail;
    if (shown || !(s.status === "succeeded" || s.status === "cancelled")) return;
    shown = true;
    if (s.status === "succeeded") open();
    document.getElementById("mistakes-caption").textContent = "loading…";
    const data = await convlab.getJSON(card.dataset.mistakes);
    if (!data) {                        // cancelled before it had weights: nothing to try
      document.getElementById("mistakes-caption").textContent = "not available";
      return;
    }
    open();
    showMistakes(data);
  });

  function open() {
    if (!card.hidden) return;
    clear();
    card.hidden = false;
  }
})();
