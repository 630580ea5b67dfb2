// Browse grid selection: click toggles, shift-click selects a range, or every image matching the filter.
(() => {
  const grid = document.getElementById("grid");
  const bulk = document.getElementById("bulk");
  if (!grid || !bulk) return;
  const count = document.getElementById("selection-count");
  let selected = new Set();
  let allMatching = false;
  let anchor = null;

  const tiles = () => [...grid.querySelectorAll(".tile")];
  const meta = () => grid.querySelector(".grid-meta");

  function paint() {
    tiles().forEach((t) => t.classList.toggle("selected", allMatching || selected.has(t.dataset.id)));
    count.textContent = allMatching ? `all ${meta().dataset.total} matching selected` : `${selected.size} selected`;
  }

  grid.addEventListener("click", (e) => {
    const tile = e.target.closest(".tile");
    if (!tile || e.target.closest("a")) return;
    if (allMatching) { allMatching = false; selected = new Set(tiles().map((t) => t.dataset.id)); }
    const all = tiles();
    if (e.shiftKey && anchor !== null) {
      const [a, b] = [all.indexOf(anchor), all.indexOf(tile)].sort((x, y) => x - y);
      all.slice(a, b + 1).forEach((t) => selected.add(t.dataset.id));
    } else if (selected.has(tile.dataset.id)) {
      selected.delete(tile.dataset.id);
    } else {
      selected.add(tile.dataset.id);
    }
    anchor = tile;
    paint();
  });

  document.getElementById("select-page").addEventListener("click", () => {
    allMatching = false;
    tiles().forEach((t) => selected.add(t.dataset.id));
    paint();
  });
  document.getElementById("select-all").addEventListener("click", () => { allMatching = true; paint(); });
  document.getElementById("select-none").addEventListener("click", () => {
    allMatching = false; selected.clear(); anchor = null; paint();
  });
  // A new filter or page is a new set of images: keep explicit picks, drop "all matching".
  document.body.addEventListener("htmx:afterSwap", () => { allMatching = false; paint(); });

  bulk.addEventListener("submit", async (e) => {
    e.preventDefault();
    const annotator = window.loupe.user || localStorage.getItem("loupe.annotator") || prompt("Your name, stored with these labels") || "";
    if (!annotator.trim()) return;
    localStorage.setItem("loupe.annotator", annotator.trim());
    const body = { class: bulk.class.value, confidence: Number(bulk.confidence.value), annotator };
    if (allMatching) {
      const f = JSON.parse(meta().dataset.filter);
      body.filter = Object.fromEntries(Object.entries(f).filter(([, v]) => v !== null && v !== ""));
    } else {
      if (!selected.size) { window.loupe.toast("select some images first", "info"); return; }
      body.images = [...selected].map(Number);
    }
    const response = await window.loupe.fetch("/api/labels/bulk", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (!response.ok) { window.loupe.toast(await window.loupe.errorText(response)); return; }
    const r = await response.json();
    window.loupe.toast(`labelled ${r.labelled} image${r.labelled === 1 ? "" : "s"}`, "info");
    selected.clear(); allMatching = false;
    htmx.ajax("GET", window.location.pathname + window.location.search, { target: "#grid" });
  });
  paint();
})();
