// Shared helpers for the small JavaScript islands.
window.loupe = {
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
  async errorText(response) {
    try {
      const body = await response.json();
      if (body && body.detail) return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (_) { /* not JSON */ }
    return `request failed (${response.status})`;
  },
};

document.addEventListener("htmx:responseError", (e) => {
  window.loupe.toast(`request failed (${e.detail.xhr.status})`);
});
