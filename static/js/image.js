// The image page: exclude / include with a reason, and undo of the bulk action that labelled it.
(() => {
  const annotator = () => {
    const name = window.loupe.user || localStorage.getItem("loupe.annotator") || prompt("Your name, stored with this change") || "";
    if (name.trim()) localStorage.setItem("loupe.annotator", name.trim());
    return name.trim();
  };
  async function post(url, body) {
    const response = await window.loupe.fetch(url, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (!response.ok) { window.loupe.toast(await window.loupe.errorText(response)); return null; }
    return response.json();
  }

  const form = document.getElementById("exclusion");
  if (form) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const who = annotator();
      if (!who) return;
      const verb = form.dataset.excluded === "true" ? "include" : "exclude";
      const reason = form.elements.namedItem("reason").value;
      if (await post(`/api/images/${form.dataset.image}/${verb}`, { reason, annotator: who })) window.location.reload();
    });
  }

  document.querySelectorAll(".bulk-undo-old").forEach((button) => button.addEventListener("click", async () => {
    const who = annotator();
    if (!who) return;
    button.disabled = true;
    const r = await post(`/api/labels/bulk/${button.dataset.action}/undo`, { annotator: who });
    if (!r) { button.disabled = false; return; }
    window.loupe.toast(`${r.text}.`, "info");
    setTimeout(() => window.location.reload(), 600);
  }));
})();
