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
  const applied = document.getElementById("applied");
  const notice = document.getElementById("keys-notice");
  const labelNotice = document.getElementById("label-notice");
  const noneOfThese = document.getElementById("none-of-these");

  // A multi-label taxonomy: class keys switch classes on and off for the image showing, Enter saves the set.
  const multi = root.dataset.multi === "1";
  const saveSet = document.getElementById("save-set");
  const setSummary = document.getElementById("set-summary");
  const queue = root.dataset.queue || "unlabelled";
  const order = root.dataset.order || "import";
  const history = [];   // {image, event} for a label, {image, skipped: true} for a skip
  const skipped = [];
  const prefetched = new Map();
  let busy = false;
  let shownAt = performance.now();
  let hiddenSince = null;
  let hiddenMs = 0;

  // A decision acts only on an image a person has seen: decoded, a frame drawn with it, and then on
  // screen for DWELL_MS. 120 ms: a picture is taken in within ~100 ms of fixation, and no real labelling
  // decision (seeing, judging, pressing) is faster than ~150 ms, so a press sooner than this after the
  // swap was aimed at the previous image (a double press) and must not label this one.
  const DWELL_MS = 120;
  const remainingN = () => (remainingEl.dataset.n === "" ? NaN : Number(remainingEl.dataset.n));

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

  const switchedOn = () => classButtons.filter((b) => b.getAttribute("aria-pressed") === "true");
  function showSet() {
    if (setSummary) setSummary.textContent = switchedOn().map((b) => b.dataset.name).join(", ") || "none of these";
  }
  function toggleClass(button) {
    button.setAttribute("aria-pressed", String(button.getAttribute("aria-pressed") !== "true"));
    showSet();
  }

  // "=": the model's probable set switched on, in place of what is on (Enter still saves it). Not a letter:
  // letters and digits are the taxonomy's own keys (classes and tags), and none may move.
  function switchOnSuggested() {
    const wanted = (figure()?.dataset.suggestedSet || "").split(",").filter(Boolean);
    if (!wanted.length) { ignored(); return; }
    classButtons.forEach((b) => b.setAttribute("aria-pressed", String(wanted.includes(b.dataset.class) && !b.disabled)));
    showSet();
  }

  function resetDecision() {
    setConfidence(levels[0]);
    tagButtons.forEach((b) => b.setAttribute("aria-pressed", "false"));
    if (multi) { classButtons.forEach((b) => b.setAttribute("aria-pressed", "false")); showSet(); }
    note.value = "";
    shownAt = performance.now();
    hiddenMs = 0;
  }

  // A re-review offers only some classes (the split's new ones, or those left after a retire).
  // "None of these" (x) opens every active class for this image; the label then resolves the re-review.
  let anyClass = false;
  function applyAllowed() {
    const allowed = (figure()?.dataset.allowed || "").split(",").filter(Boolean);
    classButtons.forEach((b) => { b.disabled = !anyClass && allowed.length > 0 && !allowed.includes(b.dataset.class); });
    if (noneOfThese) noneOfThese.hidden = !(allowed.length > 0 && !anyClass);
  }

  function openAllClasses() {
    if (!(figure()?.dataset.allowed)) return false;
    anyClass = true;
    applyAllowed();
    const note = figure().querySelector(".rereview-note");
    if (note) note.textContent = "None of the offered classes: any class may be chosen now.";
    return true;
  }

  function swap(html) {
    stage.innerHTML = html;
    anyClass = false;
    applyAllowed();
    resetDecision();
    prefetch();
    arm();
  }

  // Decision keys wait until the image is painted and seen (app.js armer); the time on an image counts
  // from the paint.
  const { arm, seen } = window.loupe.armer(root, () => currentId(), DWELL_MS, (at) => { shownAt = at; hiddenMs = 0; });

  // A press that is ignored (too soon, a held key, a request in flight) flashes the stage, not a toast.
  function ignored() {
    root.dataset.ignored = String(Number(root.dataset.ignored || 0) + 1);
    stage.classList.remove("not-yet");
    void stage.offsetWidth;  // restart the animation when presses come in a row
    stage.classList.add("not-yet");
  }

  // "✓ Coat · sure" for a moment after a label; drawn from what was sent, so it costs no request and
  // never waits for anything.
  function confirmApplied(classIds, conf) {
    const names = classIds.map((id) => classButtons.find((b) => b.dataset.class === String(id))?.dataset.name || id);
    const level = levels.find((b) => b.dataset.confidence === conf);
    applied.textContent = `✓ ${names.join(", ") || "none of these"} · ${level ? level.dataset.name : conf}`;
    applied.classList.remove("show");
    void applied.offsetWidth;
    applied.classList.add("show");
  }

  function setConfidence(button) {
    levels.forEach((b) => b.setAttribute("aria-checked", String(b === button)));
  }
  const confidence = () => (levels.find((b) => b.getAttribute("aria-checked") === "true") || levels[0]).dataset.confidence;

  function toggleTag(button) {
    button.setAttribute("aria-pressed", String(button.getAttribute("aria-pressed") !== "true"));
  }

  // The count lives in data-n as a plain integer ("1,506" would not parse); empty when the page showed
  // a capped "1,000+", which is only counted on load.
  function bumpRemaining(delta) {
    const n = remainingN();
    if (!Number.isFinite(n)) return;
    const next = Math.max(0, n + delta);
    remainingEl.dataset.n = String(next);
    remainingEl.textContent = next.toLocaleString("en-US");
  }

  // A save refused because the image was labelled since the page showed it (another tab of this browser
  // shares its lease, so both can show one image): say so where it stays readable, and go on to the next.
  async function refused(body, id) {
    labelNotice.textContent = body.detail;
    labelNotice.hidden = false;
    // The other tab's label counted down the queue; take the server's count rather than guess.
    if (typeof body.remaining === "number" && Number.isFinite(remainingN())) {
      remainingEl.dataset.n = String(body.remaining);
      remainingEl.textContent = body.remaining.toLocaleString("en-US");
    }
    // Not in history: the key changed nothing, so u undoes this tab's own last decision.
    await showStage({ after: id, skip: skipped.join(",") });
  }

  async function send(url, options) {
    try {
      const response = await window.loupe.fetch(url, options);
      if (!response.ok) { window.loupe.toast(await window.loupe.errorText(response)); return null; }
      return response;
    } catch (err) {
      window.loupe.toast("the server did not answer; nothing was saved");
      return null;
    }
  }

  // One decision at a time, from the key press until the next image is on the stage: a press that lands
  // while the answer is still being read would otherwise act on the image that is about to go.
  async function exclusive(action) {
    if (busy) return;
    busy = true;
    const armed = root.dataset.armed;
    delete root.dataset.armed;  // "a decision would act now": not while one is in flight
    try {
      await action();
    } finally {
      busy = false;
      if (armed && armed === currentId() && seen()) root.dataset.armed = armed;  // still here (e.g. it failed)
    }
  }

  // classIds: one class (single-label), or the set switched on (multi-label; empty: none of these).
  async function label(classIds) {
    const id = currentId();
    if (!id) return;
    if (!annotator()) { askAnnotator(); return; }
    const form = new FormData();
    if (multi) {
      form.append("set", "1");
      classIds.forEach((c) => form.append("classes", c));
    } else form.append("class", classIds[0]);
    form.append("confidence", confidence());
    tagButtons.filter((b) => b.getAttribute("aria-pressed") === "true").forEach((b) => form.append("tags", b.dataset.tag));
    form.append("note", note.value);
    form.append("annotator", annotator());
    form.append("ms", elapsedMs());
    form.append("skip", skipped.join(","));
    form.append("queue", queue);
    form.append("order", order);
    if (anyClass) form.append("any_class", "1");
    form.append("seen_event", figure().dataset.seenEvent || "none");  // "" would read as no field
    const conf = confidence();
    let response;
    try {
      response = await window.loupe.fetch(`/label/${id}`, { method: "POST", body: form });
    } catch (err) {
      window.loupe.toast("the server did not answer; nothing was saved");
      return;
    }
    if (!response.ok) {
      let body = null;
      if (response.status === 409) try { body = await response.clone().json(); } catch (_) { body = null; }
      if (body && body.stale) await refused(body, id);  // other 409s (a re-review's rules) stay toasts
      else window.loupe.toast(await window.loupe.errorText(response));
      return;
    }
    labelNotice.hidden = true;
    confirmApplied(classIds, conf);
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
    if (e.key === "Escape") {
      definitions.hidden = true; cheatsheet.classList.remove("open"); notice.hidden = true; labelNotice.hidden = true;
      return;
    }
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    let button;
    // A class key that only switches a class (multi-label) is guarded as a decision too: it must land on the
    // image the person saw, and a held key must not flicker it.
    const decision = byKey(classButtons, key) || key === "Enter" || key === "s" || key === "ArrowRight" ||
      (multi && key === "=");
    const going = decision || ["u", "z", "ArrowLeft", "Backspace", "x"].includes(key);
    // A held key repeats: never a decision. Nor is a press while a save is in flight or before the
    // image now showing has been seen (see DWELL_MS).
    if (going && (e.repeat || busy || (decision && !seen()))) { e.preventDefault(); ignored(); return; }
    if (busy) { e.preventDefault(); return; }
    if (multi && (button = byKey(classButtons, key))) toggleClass(button);
    else if ((button = byKey(classButtons, key))) exclusive(() => label([button.dataset.class]));
    else if ((button = byKey(levels, key))) setConfidence(button);
    else if ((button = byKey(tagButtons, key))) toggleTag(button);
    else if (multi && key === "Enter") exclusive(() => label(switchedOn().map((b) => b.dataset.class)));
    else if (multi && key === "=") switchOnSuggested();
    else if (key === "Enter" && figure()?.dataset.topClass) exclusive(() => label([figure().dataset.topClass]));
    else if (key === "s" || key === "ArrowRight") exclusive(skip);
    else if (key === "x" && openAllClasses()) { /* the class keys now label with any class */ }
    else if (key === "u" || key === "z" || key === "ArrowLeft" || key === "Backspace") exclusive(undo);
    else if (key === "n") note.focus();
    else if (key === "g") toggle(definitions);
    else if (key === "?") cheatsheet.classList.toggle("open");
    else return;
    e.preventDefault();
  });

  const clickable = () => { if (busy || !seen()) { ignored(); return false; } return true; };
  classButtons.forEach((b) => b.addEventListener("click", () => {
    if (!clickable()) return;
    if (multi) toggleClass(b);
    else exclusive(() => label([b.dataset.class]));
  }));
  if (saveSet) saveSet.addEventListener("click", () => clickable() && exclusive(() => label(switchedOn().map((b) => b.dataset.class))));
  levels.forEach((b) => b.addEventListener("click", () => setConfidence(b)));
  tagButtons.forEach((b) => b.addEventListener("click", () => toggleTag(b)));
  document.getElementById("skip").addEventListener("click", () => clickable() && exclusive(skip));
  if (noneOfThese) noneOfThese.addEventListener("click", () => openAllClasses());
  document.getElementById("keys-notice-close").addEventListener("click", () => { notice.hidden = true; });
  document.getElementById("undo").addEventListener("click", () => exclusive(undo));
  document.getElementById("help-toggle").addEventListener("click", () => cheatsheet.classList.toggle("open"));
  definitions.addEventListener("click", () => { definitions.hidden = true; });

  // Keys never move silently: the page carries the class -> key map; the last one this browser saw is
  // kept, and the first visit after a taxonomy change lists what changed.
  function keyChanges() {
    const now = JSON.parse(root.dataset.keymap || "{}");
    const store = "loupe.keymap";
    let before = null;
    try { before = JSON.parse(localStorage.getItem(store) || "null"); } catch (_) { before = null; }
    localStorage.setItem(store, JSON.stringify(now));
    if (!before) return;  // a first visit: nothing changed for this person
    const lines = [];
    const keyText = (k) => (k ? `key ${k}` : "no key");
    for (const [id, was] of Object.entries(before)) {
      const is = now[id];
      if (!is) lines.push(`${was.name}: ${was.key || "no key"} → retired`);
      else if (is.key !== was.key) lines.push(`${is.name}: ${was.key || "no key"} → ${is.key || "no key"}`);
    }
    for (const [id, is] of Object.entries(now)) {
      if (!before[id]) lines.push(`${is.name}: new, ${keyText(is.key)}`);
    }
    if (!lines.length) return;
    const list = notice.querySelector("ul");
    list.replaceChildren(...lines.map((text) => { const li = document.createElement("li"); li.textContent = text; return li; }));
    notice.hidden = false;
  }

  keyChanges();
  showAnnotator();
  applyAllowed();
  if (!annotator()) askAnnotator();
  resetDecision();
  prefetch();
  arm();
})();
