// The image page: exclude / include with a reason, and undo of the bulk action that labelled it.
(() => {
  const annotator = () => window.loupe.signer("Your name, stored with this change");
  const post = window.loupe.postJson;

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
