// Browse grid selection: click toggles, shift-click selects a range, or every image matching the filter.
// A bulk action is previewed first (the server states the change), applied only on confirmation with the
// previewed count, and can be undone as one.
(() => {
  const grid = document.getElementById("grid");
  const bulk = document.getElementById("bulk");
  if (!grid || !bulk) return;
  const count = document.getElementById("selection-count");
  const apply = bulk.querySelector("button[type=submit]");
  const confirmBox = document.getElementById("bulk-confirm");
  let selected = new Set();
  let allMatching = false;
  let anchor = null;
  // Not bulk.action: a control named "action" and the form's own action property would be one name.
  const field = (name) => bulk.elements.namedItem(name);

  const tiles = () => [...grid.querySelectorAll(".tile")];
  const meta = () => grid.querySelector(".grid-meta");
  const number = (n) => n.toLocaleString("en-US");

  function paint() {
    tiles().forEach((t) => t.classList.toggle("selected", allMatching || selected.has(t.dataset.id)));
    count.textContent = allMatching ? `all ${meta().dataset.total} matching selected` : `${number(selected.size)} selected`;
  }

  // No class is preselected: a bulk relabel must name its class on purpose.
  // add / remove (a multi-label taxonomy) name a class as a label does.
  const classed = () => ["label", "add", "remove"].includes(field("action").value);
  function updateForm() {
    const labelling = classed();
    bulk.querySelectorAll(".bulk-label").forEach((el) => { el.hidden = !labelling; });
    bulk.querySelector(".bulk-reason").hidden = labelling;
    apply.disabled = labelling ? !field("class").value : false;
    hide(confirmBox);
  }

  function hide(el) { el.hidden = true; }

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
    hide(confirmBox);
    paint();
  });

  document.getElementById("select-page").addEventListener("click", () => {
    allMatching = false;
    tiles().forEach((t) => selected.add(t.dataset.id));
    hide(confirmBox);
    paint();
  });
  document.getElementById("select-all").addEventListener("click", () => { allMatching = true; hide(confirmBox); paint(); });
  document.getElementById("select-none").addEventListener("click", () => {
    allMatching = false; selected.clear(); anchor = null; hide(confirmBox); paint();
  });
  bulk.addEventListener("change", updateForm);
  // A new filter or page is a new set of images: keep explicit picks, drop "all matching".
  document.body.addEventListener("htmx:afterSwap", () => { allMatching = false; paint(); });

  function refresh() {
    htmx.ajax("GET", window.location.pathname + window.location.search, { target: "#grid" });
  }

  const steps = window.loupe.bulkSteps({
    confirm: confirmBox, confirmText: document.getElementById("bulk-confirm-text"),
    yes: document.getElementById("bulk-confirm-yes"), no: document.getElementById("bulk-confirm-no"),
    done: document.getElementById("bulk-done"), doneText: document.getElementById("bulk-done-text"),
    undo: document.getElementById("bulk-undo"),
  }, {
    onDone() { selected.clear(); allMatching = false; refresh(); },
    onUndone: refresh,
  });

  bulk.addEventListener("submit", async (e) => {
    e.preventDefault();
    const annotator = steps.annotator();
    if (!annotator) return;
    const action = field("action").value;
    const body = { action, annotator };
    if (classed()) {
      if (!field("class").value) { window.loupe.toast("choose a class first", "info"); return; }
      body.class = field("class").value;
      body.confidence = Number(field("confidence").value);
    } else {
      body.reason = field("reason").value;
    }
    if (allMatching) {
      const f = JSON.parse(meta().dataset.filter);
      body.filter = Object.fromEntries(Object.entries(f).filter(([, v]) => v !== null && v !== ""));
    } else {
      if (!selected.size) { window.loupe.toast("select some images first", "info"); return; }
      body.images = [...selected].map(Number);
    }
    await steps.preview(body);
  });

  document.querySelectorAll(".bulk-undo-old").forEach((b) => b.addEventListener("click", () => steps.undo(b.dataset.action, b)));

  updateForm();
  paint();
})();
