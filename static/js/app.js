// Shared helpers for the small JavaScript islands.
const loupeMeta = (name) => document.querySelector(`meta[name="${name}"]`)?.content || "";

window.loupe = {
  // The logged-in user's name, or "" when nobody logs in (loopback).
  user: loupeMeta("loupe-user"),
  // fetch() with the session's CSRF token on changes; a lapsed login goes back to the login page.
  async fetch(url, options = {}) {
    const method = (options.method || "GET").toUpperCase();
    const headers = new Headers(options.headers || {});
    if (!["GET", "HEAD"].includes(method)) headers.set("X-CSRF-Token", loupeMeta("csrf-token"));
    const response = await fetch(url, { ...options, headers });
    if (response.status === 401 && window.loupe.user) {
      window.location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
    }
    return response;
  },
  toast(message, kind = "error") {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = message;
    el.className = "show " + kind;
    clearTimeout(el._timer);
    el._timer = setTimeout(() => { el.className = ""; }, 4000);
  },
  // The annotator's name: asked once, kept in localStorage, stored with every decision.
  annotatorDialog(dialog) {
    if (window.loupe.user) {  // logged in: the server signs every decision with this name
      const user = window.loupe.user;
      document.getElementById("annotator-name").textContent = user;
      document.getElementById("change-annotator").hidden = true;
      return { annotator: () => user, showAnnotator() {}, askAnnotator() {} };
    }
    const annotator = () => localStorage.getItem("loupe.annotator") || "";
    const input = document.getElementById("annotator-input");
    function showAnnotator() {
      document.getElementById("annotator-name").textContent = annotator() || "(nobody yet)";
    }
    function askAnnotator() {
      input.value = annotator();
      dialog.showModal();
      input.focus();
    }
    dialog.addEventListener("close", () => {
      const name = input.value.trim();
      if (name) localStorage.setItem("loupe.annotator", name);
      showAnnotator();
      if (!annotator()) askAnnotator();
    });
    document.getElementById("change-annotator").addEventListener("click", askAnnotator);
    return { annotator, showAnnotator, askAnnotator };
  },
  // The name a change is signed with, asked for once when the page has no dialog of its own.
  signer(question) {
    const name = window.loupe.user || localStorage.getItem("loupe.annotator") || prompt(question) || "";
    if (name.trim()) localStorage.setItem("loupe.annotator", name.trim());
    return name.trim();
  },
  // POST a JSON body; the answer's JSON, or null after a toast that says what went wrong.
  async postJson(url, body) {
    const response = await window.loupe.fetch(url, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (!response.ok) { window.loupe.toast(await window.loupe.errorText(response)); return null; }
    return response.json();
  },
  // A decision key acts only on what was seen: `arm()` waits until the image is decoded and drawn (two
  // animation frames: the first runs before that frame paints), then `dwellMs` more, and marks `root`
  // data-armed with the item's id; `seen()` says whether that time has passed for the item now shown.
  armer(root, currentId, dwellMs, onPainted = () => {}) {
    let generation = 0;
    let paintedAt = null;
    function arm() {
      const gen = ++generation;
      paintedAt = null;
      delete root.dataset.armed;
      const id = currentId();
      const img = document.getElementById("current");
      const painted = () => requestAnimationFrame(() => requestAnimationFrame(() => {
        if (gen !== generation) return;
        paintedAt = performance.now();
        onPainted(paintedAt);
        setTimeout(() => { if (gen === generation) root.dataset.armed = id; }, dwellMs);
      }));
      // A broken image arms too (after its error): the person sees it is broken and can skip it.
      if (!img) painted();
      else if (img.decode) img.decode().then(painted, painted);
      else if (img.complete) painted();
      else { img.addEventListener("load", painted, { once: true }); img.addEventListener("error", painted, { once: true }); }
    }
    const seen = () => paintedAt !== null && performance.now() - paintedAt >= dwellMs;
    return { arm, seen };
  },
  // A bulk change (POST /api/labels/bulk) in the steps Browse and the similar-image strips share: `preview(body)`
  // asks for a dry run and shows the server's sentence in `confirm`, Confirm applies it with the previewed count
  // (the server refuses with 409 when the selection changed since), and `undo` takes the whole action back.
  // els: {confirm, confirmText, yes, no, done, doneText, undo}; onDone(result) / onUndone(result) refresh the page.
  bulkSteps(els, { onDone = () => {}, onUndone = () => {} } = {}) {
    const post = window.loupe.postJson;
    const annotator = () => window.loupe.signer("Your name, stored with these changes");
    let pending = null;
    const hide = () => { els.confirm.hidden = true; };
    async function preview(body) {
      const plan = await post("/api/labels/bulk", { ...body, dry_run: true });
      if (!plan) return null;
      els.done.hidden = true;
      els.confirmText.textContent = plan.text;
      els.yes.disabled = plan.count === 0 || (plan.blocked || []).length > 0;  // the server would refuse it
      pending = { ...body, expect: plan.count };
      els.confirm.hidden = false;
      (els.yes.disabled ? els.no : els.yes).focus();
      return plan;
    }
    async function undo(actionId, button) {
      const who = annotator();
      if (!who) return;
      button.disabled = true;
      const r = await post(`/api/labels/bulk/${actionId}/undo`, { annotator: who });
      if (!r) { button.disabled = false; return; }
      els.doneText.textContent = `${r.text}.`;
      els.done.hidden = false;
      els.undo.disabled = true;
      onUndone(r);
    }
    els.no.addEventListener("click", () => { pending = null; hide(); });
    els.yes.addEventListener("click", async () => {
      if (!pending) return;
      const body = pending;
      pending = null;
      hide();
      const done = await post("/api/labels/bulk", body);
      if (!done) return;
      els.doneText.textContent = `${done.text}: done.`;
      els.undo.dataset.action = done.id;
      els.undo.disabled = false;
      els.done.hidden = false;
      onDone(done);
    });
    els.undo.addEventListener("click", () => undo(els.undo.dataset.action, els.undo));
    return { preview, undo, hide, annotator };
  },
  async errorText(response) {
    try {
      const body = await response.json();
      if (body && body.detail) return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (_) { /* not JSON */ }
    return `request failed (${response.status})`;
  },
};

document.addEventListener("htmx:configRequest", (e) => {
  if (String(e.detail.verb).toLowerCase() !== "get") e.detail.headers["X-CSRF-Token"] = loupeMeta("csrf-token");
  // Forms inside [data-send-author] (the taxonomy editor) say who made the change.
  if (e.detail.elt.closest("[data-send-author]")) {
    e.detail.parameters.author = localStorage.getItem("loupe.annotator") || "";
  }
});

// <form data-confirm="question">: asks before it submits (an attribute, not inline script: see the CSP).
document.addEventListener("submit", (e) => {
  const question = e.target.dataset && e.target.dataset.confirm;
  if (question && !window.confirm(question)) e.preventDefault();
});

document.addEventListener("htmx:responseError", (e) => {
  window.loupe.toast(`request failed (${e.detail.xhr.status})`);
});
