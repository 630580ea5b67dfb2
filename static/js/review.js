// The review page: one flag at a time; keep, relabel, mark ambiguous or exclude from the keyboard.
(() => {
  const root = document.getElementById("reviewer");
  if (!root) return;
  const stage = document.getElementById("stage");
  const cheatsheet = document.getElementById("cheatsheet");
  const definitions = document.getElementById("definitions");
  const dialog = document.getElementById("annotator-dialog");
  const classButtons = [...root.querySelectorAll("[data-class]")];
  const actionButtons = [...root.querySelectorAll("[data-action]")];
  const kind = root.dataset.kind || "";
  const skipped = [];
  const decided = [];  // flag ids decided here, newest last: what u takes back
  let busy = false;
  let shownAt = performance.now();
  // As on the labelling page (static/js/label.js): a decision acts only on a flag whose image was painted
  // and on screen for 120 ms, so a double press cannot decide the next flag unseen.
  const DWELL_MS = 120;

  const { annotator, showAnnotator, askAnnotator } = window.loupe.annotatorDialog(dialog);

  const evidence = () => stage.querySelector("[data-flag-id]");
  const flagId = () => evidence()?.dataset.flagId || "";

  function markCurrent() {
    const current = evidence()?.dataset.currentClass || "";
    classButtons.forEach((b) => b.classList.toggle("is-current", b.dataset.class === current));
  }

  const { arm, seen } = window.loupe.armer(root, () => flagId(), DWELL_MS, (at) => { shownAt = at; });

  function ignored() {
    root.dataset.ignored = String(Number(root.dataset.ignored || 0) + 1);
    stage.classList.remove("not-yet");
    void stage.offsetWidth;
    stage.classList.add("not-yet");
  }

  async function next(flag) {
    busy = true;
    try {
      const query = new URLSearchParams({ kind, skip: skipped.join(",") });
      if (flag) query.set("flag", flag);
      const response = await fetch(`/review/stage?${query}`);
      if (!response.ok) { window.loupe.toast(await window.loupe.errorText(response)); return; }
      stage.innerHTML = await response.text();
      if (skipped.includes(flagId())) skipped.length = 0;  // wrapped around to the skipped flags
      markCurrent();
      arm();
    } catch (err) {
      window.loupe.toast("the server did not answer");
    } finally {
      busy = false;
    }
  }

  async function decide(action, classId, classes) {
    const id = flagId();
    if (!id) return;
    if (!annotator()) { askAnnotator(); return; }
    const body = { action, annotator: annotator(), ms: Math.round(performance.now() - shownAt) };
    if (classId) body.class = Number(classId);
    if (classes) body.classes = classes.map(Number);
    busy = true;
    let ok = false;
    try {
      const response = await window.loupe.fetch(`/api/flags/${id}/resolve`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      if (!response.ok) window.loupe.toast(await window.loupe.errorText(response));
      else ok = true;
    } catch (err) {
      window.loupe.toast("the server did not answer; nothing was saved");
    } finally {
      busy = false;
    }
    if (ok) {
      decided.push(id);
      window.loupe.toast(`flag #${id}: ${action}`, "info");
      await next();
    }
  }

  async function undo() {
    const id = decided.pop();
    if (!id) { window.loupe.toast("nothing to undo", "info"); return; }
    busy = true;
    let ok = false;
    try {
      const response = await window.loupe.fetch(`/api/flags/${id}/undo`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ annotator: annotator() }),
      });
      if (!response.ok) window.loupe.toast(await window.loupe.errorText(response));
      else ok = true;
    } catch (err) {
      window.loupe.toast("the server did not answer; nothing was undone");
    } finally {
      busy = false;
    }
    if (!ok) { decided.push(id); return; }
    window.loupe.toast(`flag #${id}: decision undone`, "info");
    await next(id);
  }

  // A set (multi-label): the flag's suggested set, with every suspect tag turned over.
  const isSet = () => evidence()?.dataset.multi === "1";
  const idList = (text) => (text || "").split(",").filter(Boolean);

  // The model's suggestion: the flag's suggested class, else the model's top guess.
  function accept() {
    if (isSet()) { decide("relabel", null, idList(evidence().dataset.suggestedSet)); return; }
    const id = evidence()?.dataset.suggestedId || "";
    const button = classButtons.find((b) => b.dataset.class === id);
    if (!button) { window.loupe.toast("no suggestion for this flag", "info"); return; }
    relabel(button);
  }

  function relabel(button) {
    // A set: the class key turns that one class over (the server reads the set it holds now).
    if (isSet()) { decide("relabel", button.dataset.class); return; }
    const current = evidence()?.dataset.currentClass || "";
    decide(button.dataset.class === current ? "keep" : "relabel", button.dataset.class);
  }

  async function skip() {
    const id = flagId();
    if (!id) return;
    skipped.push(id);
    await next();
  }

  const byKey = (key) => classButtons.find((b) => b.dataset.key === key);

  document.addEventListener("keydown", (e) => {
    if (dialog.open || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target instanceof HTMLTextAreaElement || e.target instanceof HTMLSelectElement) return;
    // A similar image's checkbox keeps the decision keys (Space toggles it); text fields take their own keys.
    if (e.target instanceof HTMLInputElement && e.target.type !== "checkbox") return;
    // The strip's label form, confirmation and undo take their own keys: Enter there is not "keep".
    if (e.target instanceof Element && e.target.closest(".strip-bulk, .strip-confirm, .strip-done")) return;
    if (e.key === "Enter" && e.target instanceof HTMLAnchorElement) return;  // a focused link opens, it does not keep
    if (e.key === "Escape") { definitions.hidden = true; cheatsheet.classList.remove("open"); return; }
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    const decision = ["Enter", "w", "x", "a", "s", "ArrowRight"].includes(key) || Boolean(byKey(key));
    // A held key (repeat), a press while a request is in flight or before the flag was seen decides nothing.
    if ((decision || key === "u") && (e.repeat || busy || (decision && !seen()))) { e.preventDefault(); ignored(); return; }
    if (busy) { e.preventDefault(); return; }
    let button;
    if (key === "Enter") decide("keep");
    else if (key === "a") accept();
    else if (key === "u") undo();
    else if (key === "w") decide("ambiguous");
    else if (key === "x") decide("exclude");
    else if (key === "s" || key === "ArrowRight") skip();
    else if (key === "g") definitions.hidden = !definitions.hidden;
    else if (key === "?") cheatsheet.classList.toggle("open");
    else if ((button = byKey(key))) relabel(button);
    else return;
    e.preventDefault();
  });

  const clickable = () => { if (busy || !seen()) { ignored(); return false; } return true; };
  actionButtons.forEach((b) => b.addEventListener("click", () => clickable() && decide(b.dataset.action)));
  classButtons.forEach((b) => b.addEventListener("click", () => clickable() && relabel(b)));
  document.getElementById("skip").addEventListener("click", () => clickable() && skip());
  document.getElementById("accept").addEventListener("click", () => clickable() && accept());
  document.getElementById("undo").addEventListener("click", () => !busy && undo());
  definitions.addEventListener("click", () => { definitions.hidden = true; });
  // Labelling neighbours from the similar-images strip can settle the flag (a duplicate group that agrees now):
  // such a flag closed itself, so say why and show the next one.
  stage.addEventListener("loupe:strip-labelled", async () => {
    const id = flagId();
    if (!id || busy) return;
    const response = await fetch(`/api/flags/${id}`);
    if (!response.ok) return;
    const flag = await response.json();
    if (flag.status === "open" || flagId() !== id) return;
    window.loupe.toast(`flag #${id} closed itself: ${(flag.details || {}).cancelled_because || flag.status}`, "info");
    await next();
  });

  showAnnotator();
  markCurrent();
  if (!annotator()) askAnnotator();
  arm();
})();
