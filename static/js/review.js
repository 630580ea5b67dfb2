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
  let busy = false;
  let shownAt = performance.now();

  const { annotator, showAnnotator, askAnnotator } = window.loupe.annotatorDialog(dialog);

  const evidence = () => stage.querySelector("[data-flag-id]");
  const flagId = () => evidence()?.dataset.flagId || "";

  function markCurrent() {
    const current = evidence()?.dataset.currentClass || "";
    classButtons.forEach((b) => b.classList.toggle("is-current", b.dataset.class === current));
  }

  async function next() {
    busy = true;
    try {
      const query = new URLSearchParams({ kind, skip: skipped.join(",") });
      const response = await fetch(`/review/stage?${query}`);
      if (!response.ok) { window.loupe.toast(await window.loupe.errorText(response)); return; }
      stage.innerHTML = await response.text();
      if (skipped.includes(flagId())) skipped.length = 0;  // wrapped around to the skipped flags
      markCurrent();
      shownAt = performance.now();
    } catch (err) {
      window.loupe.toast("the server did not answer");
    } finally {
      busy = false;
    }
  }

  async function decide(action, classId) {
    const id = flagId();
    if (!id) return;
    if (!annotator()) { askAnnotator(); return; }
    const body = { action, annotator: annotator(), ms: Math.round(performance.now() - shownAt) };
    if (classId) body.class = Number(classId);
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
      window.loupe.toast(`flag #${id}: ${action}`, "info");
      await next();
    }
  }

  function relabel(button) {
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
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement) return;
    if (e.key === "Escape") { definitions.hidden = true; cheatsheet.classList.remove("open"); return; }
    if (busy) { e.preventDefault(); return; }
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    let button;
    if (key === "Enter") decide("keep");
    else if (key === "w") decide("ambiguous");
    else if (key === "x") decide("exclude");
    else if (key === "s" || key === "ArrowRight") skip();
    else if (key === "g") definitions.hidden = !definitions.hidden;
    else if (key === "?") cheatsheet.classList.toggle("open");
    else if ((button = byKey(key))) relabel(button);
    else return;
    e.preventDefault();
  });

  actionButtons.forEach((b) => b.addEventListener("click", () => !busy && decide(b.dataset.action)));
  classButtons.forEach((b) => b.addEventListener("click", () => !busy && relabel(b)));
  document.getElementById("skip").addEventListener("click", () => !busy && skip());
  definitions.addEventListener("click", () => { definitions.hidden = true; });

  showAnnotator();
  markCurrent();
  if (!annotator()) askAnnotator();
})();
