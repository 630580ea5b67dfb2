// Drag-and-drop import on the overview page: posts files to /api/images.
(() => {
  const form = document.getElementById("upload");
  if (!form) return;
  const out = document.getElementById("upload-result");
  const input = form.querySelector('input[type="file"]');

  async function upload(files) {
    const source = form.source.value.trim();
    if (!source) { window.loupe.toast("name the source first (where these images come from)"); form.source.focus(); return; }
    if (!files.length) return;
    const data = new FormData();
    data.append("source", source);
    for (const f of files) data.append("files", f);
    out.textContent = `importing ${files.length} file${files.length === 1 ? "" : "s"}…`;
    const response = await window.loupe.fetch("/api/images", { method: "POST", body: data });
    if (!response.ok) { out.textContent = ""; window.loupe.toast(await window.loupe.errorText(response)); return; }
    const r = await response.json();
    out.innerHTML = "";
    const summary = document.createElement("p");
    summary.textContent = `${r.imported.length} imported, ${r.duplicates.length} already there, ${r.rejected.length} rejected.`;
    out.append(summary);
    if (r.rejected.length) {
      const list = document.createElement("ul");
      for (const x of r.rejected) {
        const li = document.createElement("li");
        li.textContent = `${x.filename}: ${x.error}`;
        list.append(li);
      }
      out.append(list);
    }
    const reload = document.createElement("a");
    reload.href = "/";
    reload.textContent = "refresh the counts";
    out.append(reload);
  }

  input.addEventListener("change", () => upload([...input.files]));
  form.addEventListener("dragover", (e) => { e.preventDefault(); form.classList.add("over"); });
  form.addEventListener("dragleave", () => form.classList.remove("over"));
  form.addEventListener("drop", (e) => {
    e.preventDefault();
    form.classList.remove("over");
    upload([...e.dataTransfer.files]);
  });
  form.addEventListener("submit", (e) => e.preventDefault());
})();
