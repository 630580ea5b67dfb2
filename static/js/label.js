// The labelling page: every action from the keyboard, the next images prefetched.
(() => {
  const root = document.getElementById("labeller");
  if (!root) return;
  const stage = document.getElementById("stage");
  const note = document.getElementById("note");
  const remainingEl = document.getElementById("remaining");
  const cheatsheet = document.getElementById("cheatsheet");
  const definitions = document.getElementById("definitions");
  const dialog = document.getElementById("annotator-dialog");
  const levels = [...root.querySelectorAll("[data-confidence]")];
  const tagButtons = [...root.querySelectorAll("[data-tag]")];
  const classButtons = [...root.querySelectorAll("[data-class]")];

  const queue = root.dataset.queue || "unlabelled";
  const order = root.dataset.order || "import";
  const history = [];   // {image, event} for a label, {image, skipped: true} for a skip
  const skipped = [];
  const prefetched = new Map();
  let busy = false;
  let shownAt = performance.now();
  let hiddenSince = null;
  let hiddenMs = 0;

  const { annotator, showAnnotator, askAnnotator } = window.loupe.annotatorDialog(dialog);

  // Time on an image counts only while the page is visible.
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) hiddenSince = performance.now();
    else if (hiddenSince !== null) { hiddenMs += performance.now() - hiddenSince; hiddenSince = null; }
  });
  const elapsedMs = () => Math.max(0, Math.round(performance.now() - shownAt - hiddenMs));

  const figure = () => stage.querySelector("[data-image-id]");
  const currentId = () => (figure() ? figure().dataset.imageId : "");

  function prefetch() {
    const ids = (figure()?.dataset.prefetch || "").split(",").filter(Boolean);
    for (const id of ids) {
      if (prefetched.has(id)) continue;
      const img = new Image();
      img.src = `/api/images/${id}/preview`;
      prefetched.set(id, img);
    }
  }

  function resetDecision() {
    setConfidence(levels[0]);
    tagButtons.forEach((b) => b.setAttribute("aria-pressed", "false"));
    note.value = "";
    shownAt = performance.now();
    hiddenMs = 0;
  }

  // A re-review offers only some classes (the split's new ones, or those left after a retire).
  function applyAllowed() {
    const allowed = (figure()?.dataset.allowed || "").split(",").filter(Boolean);
    classButtons.forEach((b) => { b.disabled = allowed.length > 0 && !allowed.includes(b.dataset.class); });
  }

  function swap(html) {
    stage.innerHTML = html;
    applyAllowed();
    resetDecision();
    prefetch();
    const img = document.getElementById("current");
    if (img && !img.complete) img.addEventListener("load", () => { shownAt = performance.now(); }, { once: true });
  }

  function setConfidence(button) {
    levels.forEach((b) => b.setAttribute("aria-checked", String(b === button)));
  }
  const confidence = () => (levels.find((b) => b.getAttribute("aria-checked") === "true") || levels[0]).dataset.confidence;

  function toggleTag(button) {
    button.setAttribute("aria-pressed", String(button.getAttribute("aria-pressed") !== "true"));
  }

  function bumpRemaining(delta) {
    const n = Number(remainingEl.textContent);
    if (Number.isFinite(n)) remainingEl.textContent = Math.max(0, n + delta);  // "10,000+" is only counted on load
  }

  async function send(url, options) {
    busy = true;
    try {
      const response = await window.loupe.fetch(url, options);
      if (!response.ok) { window.loupe.toast(await window.loupe.errorText(response)); return null; }
      return response;
    } catch (err) {
      window.loupe.toast("the server did not answer; nothing was saved");
      return null;
    } finally {
      busy = false;
    }
  }

  async function label(classId) {
    const id = currentId();
    if (!id) return;
    if (!annotator()) { askAnnotator(); return; }
    const form = new FormData();
    form.append("class", classId);
    form.append("confidence", confidence());
    tagButtons.filter((b) => b.getAttribute("aria-pressed") === "true").forEach((b) => form.append("tags", b.dataset.tag));
    form.append("note", note.value);
    form.append("annotator", annotator());
    form.append("ms", elapsedMs());
    form.append("skip", skipped.join(","));
    form.append("queue", queue);
    form.append("order", order);
    const response = await send(`/label/${id}`, { method: "POST", body: form });
    if (!response) return;
    swap(await response.text());
    history.push({ image: id, event: figure().dataset.lastEvent });
    bumpRemaining(-1);
  }

  async function showStage(query) {
    const response = await send(`/label/stage?${new URLSearchParams({ ...query, queue, order })}`, {});
    if (response) swap(await response.text());
    return Boolean(response);
  }

  async function skip() {
    const id = currentId();
    if (!id) return;
    skipped.push(id);
    if (await showStage({ after: id, skip: skipped.join(",") })) history.push({ image: id, skipped: true });
  }

  async function undo() {
    const last = history.pop();
    if (!last) { window.loupe.toast("nothing to undo", "info"); return; }
    if (last.skipped) {
      skipped.splice(skipped.lastIndexOf(last.image), 1);
    } else if (queue === "audit") {
      history.push(last);
      window.loupe.toast("an audit answer is recorded as given; it cannot be undone", "info");
      return;
    } else {
      const response = await send(`/api/images/${last.image}/labels/undo`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ event: Number(last.event), annotator: annotator() }),
      });
      if (!response) { history.push(last); return; }
      bumpRemaining(1);
    }
    await showStage({ image: last.image, skip: skipped.join(",") });
  }

  function toggle(el) { el.hidden = !el.hidden; }

  const byKey = (buttons, key) => buttons.find((b) => b.dataset.key === key && !b.disabled);

  document.addEventListener("keydown", (e) => {
    if (dialog.open || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target === note) {
      if (e.key === "Escape" || e.key === "Enter") { note.blur(); e.preventDefault(); }
      return;
    }
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement) return;
    if (e.key === "Escape") { definitions.hidden = true; cheatsheet.classList.remove("open"); return; }
    if (busy) { e.preventDefault(); return; }
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    let button;
    if ((button = byKey(classButtons, key))) label(button.dataset.class);
    else if ((button = byKey(levels, key))) setConfidence(button);
    else if ((button = byKey(tagButtons, key))) toggleTag(button);
    else if (key === "Enter" && figure()?.dataset.topClass) label(figure().dataset.topClass);
    else if (key === "s" || key === "ArrowRight") skip();
    else if (key === "u" || key === "z" || key === "ArrowLeft" || key === "Backspace") undo();
    else if (key === "n") note.focus();
    else if (key === "g") toggle(definitions);
    else if (key === "?") cheatsheet.classList.toggle("open");
    else return;
    e.preventDefault();
  });

  classButtons.forEach((b) => b.addEventListener("click", () => !busy && label(b.dataset.class)));
  levels.forEach((b) => b.addEventListener("click", () => setConfidence(b)));
  tagButtons.forEach((b) => b.addEventListener("click", () => toggleTag(b)));
  document.getElementById("skip").addEventListener("click", () => !busy && skip());
  document.getElementById("undo").addEventListener("click", () => !busy && undo());
  document.getElementById("help-toggle").addEventListener("click", () => cheatsheet.classList.toggle("open"));
  definitions.addEventListener("click", () => { definitions.hidden = true; });

  showAnnotator();
  applyAllowed();
  if (!annotator()) askAnnotator();
  resetDecision();
  prefetch();
})();
