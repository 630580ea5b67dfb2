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
