// Drag-and-drop import on the overview page: posts files (and, optionally, their labels) to /api/images.
(() => {
  const form = document.getElementById("upload");
  if (!form) return;
  const out = document.getElementById("upload-result");
  const input = form.querySelector('input[name="files"]');
  const labelFile = form.querySelector('input[name="labels"]');

  async function upload(files) {
    const source = form.source.value.trim();
    if (!source) { window.loupe.toast("name the source first (where these images come from)"); form.source.focus(); return; }
    if (!files.length) return;
    const data = new FormData();
    data.append("source", source);
    for (const f of files) data.append("files", f);
    if (labelFile.files.length) data.append("labels", labelFile.files[0]);
    if (form.labels_folders.checked) data.append("labels_format", "folders");
    out.textContent = `importing ${files.length} file${files.length === 1 ? "" : "s"}…`;
    const response = await window.loupe.fetch("/api/images", { method: "POST", body: data });
    if (!response.ok) { out.textContent = ""; window.loupe.toast(await window.loupe.errorText(response)); return; }
    const r = await response.json();
    out.innerHTML = "";
    const summary = document.createElement("p");
    summary.textContent = `${r.imported.length} imported, ${r.duplicates.length} already there, ${r.rejected.length} rejected.`;
    out.append(summary);
    if (r.labels) out.append(labelSummary(r.labels));
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

  function labelSummary(l) {
    const box = document.createElement("div");
    const line = document.createElement("p");
    line.textContent = `labels (${l.format}): ${l.labelled} added, ${l.unchanged} unchanged, ` +
      `${l.conflicts.length} conflicting (kept the existing label), ${l.unmatched.length} not found, ` +
      `${l.unlabelled.length} files without a label` +
      (l.new_classes.length ? `; new classes: ${l.new_classes.join(", ")}` : "") +
      (l.suggestions ? `; ${l.suggestions} model suggestions (job #${l.suggestion_job}), not labels` : "");
    box.append(line);
    const problems = [...l.conflicts.map((c) => `${c.file}: ${c.reason}`), ...l.unmatched.map((u) => `${u.file}: ${u.reason}`)];
    if (problems.length) {
      const list = document.createElement("ul");
      for (const text of problems.slice(0, 20)) {
        const li = document.createElement("li");
        li.textContent = text;
        list.append(li);
      }
      box.append(list);
    }
    return box;
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
