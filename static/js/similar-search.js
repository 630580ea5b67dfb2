// Search by image (/similar): posts the chosen file to /api/similar, then lets htmx poll the results block
// (/similar?search=ID) until the worker has answered; the address keeps ?search=ID, so a reload shows it again.
(() => {
  const form = document.getElementById("search-form");
  if (!form) return;
  const results = () => document.getElementById("search-results");
  const preview = document.getElementById("query-preview");

  // The chosen image beside the form (a blob: URL; nothing is sent until Search).
  form.elements.namedItem("file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.hidden = !file;
    if (file) preview.src = URL.createObjectURL(file);
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    if (!data.get("job")) data.delete("job");  // empty: the newest space
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    results().innerHTML = '<p class="searching">searching… <span class="hint">(uploading)</span></p>';
    try {
      const response = await window.loupe.fetch("/api/similar", { method: "POST", body: data });
      if (!response.ok) {
        const message = await window.loupe.errorText(response);
        results().innerHTML = "";
        const p = document.createElement("p");
        p.className = "error";
        p.textContent = message;
        results().append(p);
        return;
      }
      const { job } = await response.json();
      history.replaceState(null, "", `/similar?search=${job}`);
      htmx.ajax("GET", `/similar?search=${job}`, { target: "#search-results", swap: "outerHTML" });
    } finally {
      button.disabled = false;
    }
  });
})();
