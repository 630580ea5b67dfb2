// The map: every analysed image as a point on a canvas, coloured by class, with flagged, unlabelled and
// excluded points marked. Points are written into one ImageData (no per-point DOM, no per-point path), so
// 100,000 points draw in a few milliseconds. Box or lasso select sends the polygon (map coordinates) to
// Browse, which recomputes membership on the server with the same even-odd test as `inside` below.
(() => {
  const page = document.getElementById("map-page");
  if (!page) return;
  const job = page.dataset.job;
  const stage = document.getElementById("map-stage");
  const canvas = document.getElementById("map-canvas");
  const ctx = canvas.getContext("2d");
  const tip = document.getElementById("map-tip");
  const tipImg = document.getElementById("map-tip-img");
  const tipText = document.getElementById("map-tip-text");
  const legend = document.getElementById("map-legend");
  const countText = document.getElementById("map-count");
  const filters = document.getElementById("map-filters");
  const selectionBox = document.getElementById("map-selection");
  const selectedText = document.getElementById("map-selected");
  const openLink = document.getElementById("map-open");
  const number = (n) => n.toLocaleString("en-US");
  const DECIMALS = 5; // a region vertex as sent: the server parses the same text, so both test the same numbers

  // Tableau 20 without its greys (a grey class read as "unlabelled": Fashion-MNIST's 10th class did), then
  // golden-angle hues for taxonomies past 20 classes.
  const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#17becf", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#393b79", "#bcbd22", "#843c39"];
  function colour(i) {
    if (i < PALETTE.length) return PALETTE[i];
    return `hsl(${Math.round((i * 137.508) % 360)}, 62%, 48%)`;
  }
  function rgba(css) { // any CSS colour -> little-endian ABGR for a Uint32Array over ImageData
    const probe = document.createElement("canvas").getContext("2d");
    probe.fillStyle = css;
    probe.fillRect(0, 0, 1, 1);
    const [r, g, b] = probe.getImageData(0, 0, 1, 1).data;
    return (255 << 24) | (b << 16) | (g << 8) | r;
  }
  const BG = rgba("#ffffff"), FAINT = rgba("#e6e6e3"), GREY = rgba("#a3a3a8"), RING = rgba("#d00000"),
    CROSS = rgba("#222222");

  let d = null; // the columns, as typed arrays
  let n = 0;
  let classColour = [];
  let visible = null; // Uint8Array: passes the filters
  let view = { cx: 0, cy: 0, scale: 1 };
  let fitView = null;
  let W = 0, H = 0, dpr = 1;
  let mode = "pan";
  let polygon = null; // [x0, y0, x1, y1, ...] in map coordinates, rounded to DECIMALS
  let drawing = null; // the drag in progress
  let selected = 0;
  let grid = null;
  let pending = false;

  // ---- data ----
  async function load() {
    // The very request map.html preloads (same URL, no extra headers), so the browser hands that response over.
    // Binary (app.embeddings.maps.as_binary): a JSON header, then typed arrays viewed in place, no parsing.
    const r = await fetch(`/api/embeddings/map?job=${encodeURIComponent(job)}&format=binary`);
    if (!r.ok) {
      countText.textContent = (await r.json().catch(() => ({}))).detail || `the map did not load (${r.status})`;
      return;
    }
    const buf = await r.arrayBuffer();
    const headerLength = new DataView(buf).getUint32(0, true);
    const c = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, headerLength)));
    const TYPES = { "<i4": Int32Array, "<i2": Int16Array, "i1": Int8Array, "u1": Uint8Array };
    const col = {};
    for (const { name, dtype, offset } of c.columns) col[name] = new TYPES[dtype](buf, offset, c.n);
    n = c.n;
    const marks = col.marks, bit = (b) => Uint8Array.from(marks, (m) => (m & b ? 1 : 0));
    d = {
      // x / scale: the same double the server tests a region against (app.embeddings.maps.as_columns).
      image: col.image, x: Float64Array.from(col.x, (v) => v / c.scale),
      y: Float64Array.from(col.y, (v) => v / c.scale),
      cls: Int32Array.from(col.class), source: Int32Array.from(col.source), split: col.split,
      flagged: bit(c.marks.flagged), unlabelled: bit(c.marks.unlabelled),
      excluded: bit(c.marks.excluded), classes: c.classes, sources: c.sources, splits: c.splits,
    };
    classColour = c.classes.map((_, i) => rgba(colour(i)));
    fillFilters();
    buildLegend();
    applyFilters();
    fitView = fit();
    view = { ...fitView };
    buildGrid();
    resize();
    paint();
    page.dataset.painted = String(Math.round(performance.now()));
    page.dataset.points = String(n);
  }

  function option(select, value, text) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    select.append(o);
  }
  function fillFilters() {
    d.sources.forEach((s, i) => option(filters.elements.source, i, s));
    d.classes.forEach((s, i) => option(filters.elements.class, i, s));
    d.splits.forEach((s, i) => option(filters.elements.split, i, s));
  }
  function buildLegend() {
    legend.replaceChildren();
    const counts = new Array(d.classes.length).fill(0);
    let none = 0;
    for (let i = 0; i < n; i++) { if (d.cls[i] >= 0) counts[d.cls[i]]++; else none++; }
    d.classes.forEach((name, i) => legend.append(legendRow(colour(i), name, counts[i])));
    legend.append(legendRow("#a3a3a8", "unlabelled", none, true));
  }
  function legendRow(css, name, count, muted) {
    const row = document.createElement("div");
    row.className = "map-legend-row" + (muted ? " muted" : "");
    const sw = document.createElement("span");
    sw.className = "map-swatch";
    sw.style.background = css; // a CSSOM property, not a style attribute: allowed under the CSP
    const label = document.createElement("span");
    label.className = "map-legend-name";
    label.textContent = name;
    label.title = name;
    const k = document.createElement("span");
    k.className = "map-legend-n";
    k.textContent = number(count);
    row.append(sw, label, k);
    return row;
  }

  let order = null; // point indexes in drawing order: filtered-out (faint), unlabelled, labelled, excluded
  let colourOf = null;
  let rings = null; // flagged and visible: drawn last
  function layers() {
    colourOf = new Uint32Array(n);
    const layer = new Uint8Array(n);
    const counts = [0, 0, 0, 0];
    let flagged = 0;
    for (let i = 0; i < n; i++) {
      const l = !visible[i] ? 0 : d.excluded[i] ? 3 : d.cls[i] < 0 ? 1 : 2;
      layer[i] = l;
      counts[l]++;
      colourOf[i] = l === 0 ? FAINT : d.cls[i] >= 0 ? classColour[d.cls[i]] : l === 3 ? CROSS : GREY;
      if (l > 0 && d.flagged[i]) flagged++;
    }
    const at = [0, counts[0], counts[0] + counts[1], counts[0] + counts[1] + counts[2]];
    order = new Int32Array(n);
    rings = new Int32Array(flagged);
    let r = 0;
    for (let i = 0; i < n; i++) {
      order[at[layer[i]]++] = i;
      if (layer[i] > 0 && d.flagged[i]) rings[r++] = i;
    }
  }

  function applyFilters() {
    const f = filters.elements;
    const src = f.source.value === "" ? null : Number(f.source.value);
    const cls = f.class.value === "" ? null : Number(f.class.value);
    const spl = f.split.value === "" ? null : Number(f.split.value);
    visible = new Uint8Array(n);
    let shown = 0;
    for (let i = 0; i < n; i++) {
      const ok = (src === null || d.source[i] === src) && (cls === null || d.cls[i] === cls)
        && (spl === null || d.split[i] === spl);
      visible[i] = ok ? 1 : 0;
      shown += visible[i];
    }
    countText.textContent = shown === n ? `${number(n)} images` : `${number(shown)} of ${number(n)} images`;
    layers();
    countSelection();
  }

  // ---- view ----
  function fit() {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      if (d.x[i] < x0) x0 = d.x[i]; if (d.x[i] > x1) x1 = d.x[i];
      if (d.y[i] < y0) y0 = d.y[i]; if (d.y[i] > y1) y1 = d.y[i];
    }
    if (!n) { x0 = y0 = -1; x1 = y1 = 1; }
    const w = Math.max(x1 - x0, 1e-6), h = Math.max(y1 - y0, 1e-6);
    const rect = stage.getBoundingClientRect();
    const scale = 0.92 * Math.min(Math.max(rect.width, 50) / w, Math.max(rect.height, 50) / h);
    return { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, scale };
  }
  function resize() {
    const rect = stage.getBoundingClientRect();
    dpr = window.devicePixelRatio || 1;
    W = Math.max(1, Math.round(rect.width * dpr));
    H = Math.max(1, Math.round(rect.height * dpr));
    canvas.width = W;
    canvas.height = H;
  }
  // map -> CSS pixels of the stage (y grows upwards on the map)
  const sx = (x) => (x - view.cx) * view.scale + W / dpr / 2;
  const sy = (y) => (view.cy - y) * view.scale + H / dpr / 2;
  const mx = (px) => (px - W / dpr / 2) / view.scale + view.cx;
  const my = (py) => view.cy - (py - H / dpr / 2) / view.scale;

  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; paint(); });
  }

  // ---- drawing ----
  let frame = null; // the ImageData drawn into, kept between paints (a new 4 MB buffer each frame costs more)
  function paint() {
    if (!d) return;
    const t0 = performance.now();
    if (!frame || frame.width !== W || frame.height !== H) frame = ctx.createImageData(W, H);
    const px = new Uint32Array(frame.data.buffer);
    px.fill(BG);
    const k = view.scale * dpr, ox = W / 2 - view.cx * k, oy = H / 2 + view.cy * k;
    // Points grow a little as one zooms in: 1 device px across when the whole map fits, up to 5. A map of
    // fewer than 20,000 points starts at 3 px: at 1,200 single pixels were invisible and only the flag
    // rings showed (a walk over Fashion-MNIST); 100,000 points at 3 px would hide each other.
    const zoom = fitView ? view.scale / fitView.scale : 1;
    const base = n < 20000 ? 1.6 : 0.8;
    const r = Math.max(1, Math.min(3, Math.round(dpr * (base + Math.log2(Math.max(zoom, 1)) * 0.5))));
    const dot = (x, y, c) => { if (x >= 0 && y >= 0 && x < W && y < H) px[y * W + x] = c; };
    const xs = d.x, ys = d.y, excluded = d.excluded;
    for (let j = 0; j < n; j++) {
      const i = order[j];
      const x = Math.round(xs[i] * k + ox), y = Math.round(oy - ys[i] * k);
      if (x < -6 || y < -6 || x > W + 6 || y > H + 6) continue;
      const c = colourOf[i];
      if (excluded[i] && visible[i]) { // a cross
        for (let t = -r - 1; t <= r + 1; t++) { dot(x + t, y + t, c); dot(x + t, y - t, c); }
      } else if (r === 1) {
        if (x >= 0 && y >= 0 && x < W && y < H) px[y * W + x] = c;
      } else {
        const xa = Math.max(0, x - r + 1), xb = Math.min(W - 1, x + r - 1);
        const ya = Math.max(0, y - r + 1), yb = Math.min(H - 1, y + r - 1);
        for (let yy = ya; yy <= yb; yy++) { const row = yy * W; for (let xx = xa; xx <= xb; xx++) px[row + xx] = c; }
      }
    }
    const rad = r + 2;
    for (let j = 0; j < rings.length; j++) { // flagged: a red ring on top
      const i = rings[j];
      const x = Math.round(xs[i] * k + ox), y = Math.round(oy - ys[i] * k);
      for (let t = -rad; t <= rad; t++) {
        dot(x + t, y - rad, RING); dot(x + t, y + rad, RING); dot(x - rad, y + t, RING); dot(x + rad, y + t, RING);
      }
    }
    ctx.putImageData(frame, 0, 0);
    drawPolygon();
    page.dataset.paintMs = (performance.now() - t0).toFixed(1); // read by bench/map_paint.py
  }

  function drawPolygon() {
    const pts = drawing && drawing.points ? drawing.points : polygon;
    if (!pts || pts.length < 4) return;
    ctx.save();
    ctx.scale(dpr, dpr);
    ctx.beginPath();
    ctx.moveTo(sx(pts[0]), sy(pts[1]));
    for (let i = 2; i < pts.length; i += 2) ctx.lineTo(sx(pts[i]), sy(pts[i + 1]));
    ctx.closePath();
    ctx.fillStyle = "rgba(255, 176, 0, 0.12)";
    ctx.fill("evenodd");
    ctx.strokeStyle = "#c78500";
    ctx.lineWidth = 1.5;
    ctx.setLineDash([5, 4]);
    ctx.stroke();
    ctx.restore();
  }

  // ---- selection ----
  function inside(px, py, poly) { // even-odd, as app.embeddings.regions.inside
    let hit = false;
    const m = poly.length;
    let xj = poly[m - 2], yj = poly[m - 1];
    for (let i = 0; i < m; i += 2) {
      const xi = poly[i], yi = poly[i + 1];
      if ((yi > py) !== (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi) hit = !hit;
      xj = xi; yj = yi;
    }
    return hit;
  }
  function countSelection() {
    if (!polygon || !d) { selectionBox.hidden = true; return; }
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < polygon.length; i += 2) {
      x0 = Math.min(x0, polygon[i]); x1 = Math.max(x1, polygon[i]);
      y0 = Math.min(y0, polygon[i + 1]); y1 = Math.max(y1, polygon[i + 1]);
    }
    selected = 0;
    for (let i = 0; i < n; i++) {
      const x = d.x[i], y = d.y[i];
      if (visible[i] && x >= x0 && x <= x1 && y >= y0 && y <= y1 && inside(x, y, polygon)) selected++;
    }
    selectedText.textContent = `${number(selected)} selected`;
    openLink.href = browseUrl();
    openLink.classList.toggle("disabled", selected === 0);
    openLink.setAttribute("aria-disabled", String(selected === 0));
    selectionBox.hidden = false;
  }
  function browseUrl() {
    const q = new URLSearchParams({ analysis: job, region: polygon.map((v) => v.toFixed(DECIMALS)).join(",") });
    const f = filters.elements;
    if (f.source.value !== "") q.set("source", d.sources[Number(f.source.value)]);
    if (f.class.value === "-1") q.set("status", "unlabelled");
    else if (f.class.value !== "") q.set("class", d.classes[Number(f.class.value)]);
    if (f.split.value !== "") q.set("split", f.split.value === "-1" ? "none" : d.splits[Number(f.split.value)]);
    return `/browse?${q}`;
  }
  function finishPolygon(points) {
    // Round to what the URL carries, so the page counts exactly what the server will recompute.
    const rounded = points.map((v) => parseFloat(v.toFixed(DECIMALS)));
    polygon = rounded.length >= 6 ? rounded : null;
    countSelection();
    schedule();
  }
  function simplify(points, maxVertices) {
    if (points.length / 2 <= maxVertices) return points;
    const step = Math.ceil(points.length / 2 / maxVertices);
    const out = [];
    for (let i = 0; i < points.length; i += 2 * step) out.push(points[i], points[i + 1]);
    return out;
  }

  // ---- hover ----
  function buildGrid() { // a uniform grid over the points: a hover looks at a few cells, not 100,000 points
    const G = 128;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      x0 = Math.min(x0, d.x[i]); x1 = Math.max(x1, d.x[i]); y0 = Math.min(y0, d.y[i]); y1 = Math.max(y1, d.y[i]);
    }
    const cw = Math.max((x1 - x0) / G, 1e-9), ch = Math.max((y1 - y0) / G, 1e-9);
    const cell = new Int32Array(n), starts = new Int32Array(G * G + 1), order = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const gx = Math.min(G - 1, Math.floor((d.x[i] - x0) / cw)), gy = Math.min(G - 1, Math.floor((d.y[i] - y0) / ch));
      cell[i] = gy * G + gx;
      starts[cell[i] + 1]++;
    }
    for (let c = 0; c < G * G; c++) starts[c + 1] += starts[c];
    const fill = starts.slice(0, G * G);
    for (let i = 0; i < n; i++) order[fill[cell[i]]++] = i;
    grid = { G, x0, y0, cw, ch, starts, order };
  }
  function nearest(px, py) {
    if (!grid || !n) return -1;
    const radius = 8 / view.scale; // 8 CSS px
    const x = mx(px), y = my(py);
    const { G, x0, y0, cw, ch, starts, order } = grid;
    const ga = Math.max(0, Math.floor((x - radius - x0) / cw)), gb = Math.min(G - 1, Math.floor((x + radius - x0) / cw));
    const ha = Math.max(0, Math.floor((y - radius - y0) / ch)), hb = Math.min(G - 1, Math.floor((y + radius - y0) / ch));
    let best = -1, bestD = radius * radius;
    for (let gy = ha; gy <= hb; gy++) {
      for (let gx = ga; gx <= gb; gx++) {
        const c = gy * G + gx;
        for (let j = starts[c]; j < starts[c + 1]; j++) {
          const i = order[j];
          if (!visible[i]) continue;
          const dd = (d.x[i] - x) ** 2 + (d.y[i] - y) ** 2;
          if (dd <= bestD) { bestD = dd; best = i; }
        }
      }
    }
    return best;
  }
  let hovered = -1;
  function hover(px, py) {
    const i = nearest(px, py);
    hovered = i;
    if (i < 0) { tip.hidden = true; canvas.style.cursor = ""; return; }
    const id = d.image[i];
    if (tipImg.dataset.id !== String(id)) {
      tipImg.dataset.id = String(id);
      tipImg.src = `/api/images/${id}/thumb`;
    }
    const marks = [];
    if (d.flagged[i]) marks.push("flagged");
    if (d.excluded[i]) marks.push("excluded");
    const split = d.split[i] >= 0 ? ` · ${d.splits[d.split[i]]}` : "";
    tipText.textContent = `#${id} · ${d.cls[i] >= 0 ? d.classes[d.cls[i]] : "unlabelled"}`
      + `${marks.length ? " · " + marks.join(", ") : ""} · ${d.sources[d.source[i]] ?? ""}${split}`;
    tip.hidden = false;
    const rect = stage.getBoundingClientRect();
    tip.style.left = `${Math.min(px + 14, rect.width - 190)}px`;
    tip.style.top = `${Math.min(py + 14, rect.height - 170)}px`;
    canvas.style.cursor = "pointer";
  }

  // ---- input ----
  function local(e) {
    const rect = canvas.getBoundingClientRect();
    return [e.clientX - rect.left, e.clientY - rect.top];
  }
  function setMode(m) {
    mode = m;
    page.querySelectorAll("[data-mode]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.mode === m)));
    canvas.dataset.mode = m;
  }
  page.querySelectorAll("[data-mode]").forEach((b) => b.addEventListener("click", () => { setMode(b.dataset.mode); canvas.focus(); }));

  canvas.addEventListener("pointerdown", (e) => {
    if (e.button !== 0 || !d) return;
    canvas.setPointerCapture(e.pointerId);
    const [px, py] = local(e);
    const kind = e.shiftKey ? "box" : e.altKey ? "lasso" : mode;
    drawing = { kind, px, py, start: [mx(px), my(py)], view: { ...view }, moved: false, points: null };
    if (kind === "lasso") drawing.points = [mx(px), my(py)];
    tip.hidden = true;
  });
  canvas.addEventListener("pointermove", (e) => {
    const [px, py] = local(e);
    if (!drawing) { hover(px, py); return; }
    if (Math.abs(px - drawing.px) + Math.abs(py - drawing.py) > 3) drawing.moved = true;
    if (drawing.kind === "pan") {
      view.cx = drawing.view.cx - (px - drawing.px) / view.scale;
      view.cy = drawing.view.cy + (py - drawing.py) / view.scale;
    } else if (drawing.kind === "box") {
      const [x0, y0] = drawing.start, x1 = mx(px), y1 = my(py);
      drawing.points = [x0, y0, x1, y0, x1, y1, x0, y1];
    } else {
      const pts = drawing.points, lx = pts[pts.length - 2], ly = pts[pts.length - 1];
      if (Math.hypot((mx(px) - lx) * view.scale, (my(py) - ly) * view.scale) >= 3) pts.push(mx(px), my(py));
    }
    schedule();
  });
  function endDrag() {
    if (!drawing) return;
    const done = drawing;
    drawing = null;
    // At most 200 vertices: a Browse URL of about 3.6 kB.
    if (done.kind !== "pan" && done.moved && done.points) finishPolygon(simplify(done.points, 200));
    else if (done.kind === "pan" && !done.moved && hovered >= 0) window.location.href = `/images/${d.image[hovered]}`;
    schedule();
  }
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);
  canvas.addEventListener("pointerleave", () => { if (!drawing) tip.hidden = true; });

  function zoomAt(factor, px, py) {
    const x = mx(px), y = my(py);
    view.scale = Math.min(Math.max(view.scale * factor, (fitView ? fitView.scale : 1) / 4), (fitView ? fitView.scale : 1) * 400);
    view.cx = x - (px - W / dpr / 2) / view.scale;
    view.cy = y + (py - H / dpr / 2) / view.scale;
    schedule();
  }
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const [px, py] = local(e);
    zoomAt(Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015)), px, py);
  }, { passive: false });

  document.addEventListener("keydown", (e) => {
    if (!d || e.ctrlKey || e.metaKey || e.target.closest("input, select, textarea")) return;
    const c = [W / dpr / 2, H / dpr / 2];
    const step = 60 / view.scale;
    const keys = {
      "+": () => zoomAt(1.25, ...c), "=": () => zoomAt(1.25, ...c), "-": () => zoomAt(0.8, ...c),
      ArrowLeft: () => { view.cx -= step; }, ArrowRight: () => { view.cx += step; },
      ArrowUp: () => { view.cy += step; }, ArrowDown: () => { view.cy -= step; },
      0: () => { view = { ...fitView }; }, p: () => setMode("pan"), b: () => setMode("box"), l: () => setMode("lasso"),
      Escape: () => { polygon = null; countSelection(); },
    };
    const act = keys[e.key];
    if (!act) return;
    e.preventDefault();
    act();
    schedule();
  });
  document.getElementById("map-clear").addEventListener("click", () => { polygon = null; countSelection(); schedule(); });
  openLink.addEventListener("click", (e) => { if (selected === 0) e.preventDefault(); });
  filters.addEventListener("change", () => { applyFilters(); schedule(); });
  filters.addEventListener("submit", (e) => e.preventDefault());
  new ResizeObserver(() => { if (d) { resize(); schedule(); } }).observe(stage);

  load().catch((err) => { countText.textContent = `the map did not load: ${err}`; });
})();
