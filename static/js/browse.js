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
  const doneBox = document.getElementById("bulk-done");
  const undoButton = document.getElementById("bulk-undo");
  let selected = new Set();
  let allMatching = false;
  let anchor = null;
  let pending = null;  // the previewed request, applied on confirmation
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
  function updateForm() {
    const labelling = field("action").value === "label";
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

  const annotatorName = () => window.loupe.signer("Your name, stored with these changes");
  const post = window.loupe.postJson;

  function refresh() {
    htmx.ajax("GET", window.location.pathname + window.location.search, { target: "#grid" });
  }

  bulk.addEventListener("submit", async (e) => {
    e.preventDefault();
    const annotator = annotatorName();
    if (!annotator) return;
    const action = field("action").value;
    const body = { action, annotator };
    if (action === "label") {
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
    const plan = await post("/api/labels/bulk", { ...body, dry_run: true });
    if (!plan) return;
    hide(doneBox);
    document.getElementById("bulk-confirm-text").textContent = plan.text;
    const yes = document.getElementById("bulk-confirm-yes");
    yes.disabled = plan.count === 0 || (plan.blocked || []).length > 0;  // the server would refuse it
    pending = { ...body, expect: plan.count };
    confirmBox.hidden = false;
    (yes.disabled ? document.getElementById("bulk-confirm-no") : yes).focus();
  });

  document.getElementById("bulk-confirm-no").addEventListener("click", () => { pending = null; hide(confirmBox); });
  document.getElementById("bulk-confirm-yes").addEventListener("click", async () => {
    if (!pending) return;
    const body = pending;
    pending = null;
    hide(confirmBox);
    const done = await post("/api/labels/bulk", body);
    if (!done) return;
    document.getElementById("bulk-done-text").textContent = `${done.text}: done.`;
    undoButton.dataset.action = done.id;
    undoButton.disabled = false;
    doneBox.hidden = false;
    selected.clear(); allMatching = false;
    refresh();
  });

  async function undo(actionId, button) {
    const annotator = annotatorName();
    if (!annotator) return;
    button.disabled = true;
    const r = await post(`/api/labels/bulk/${actionId}/undo`, { annotator });
    if (!r) { button.disabled = false; return; }
    document.getElementById("bulk-done-text").textContent = `${r.text}.`;
    doneBox.hidden = false;
    undoButton.disabled = true;
    refresh();
  }
  undoButton.addEventListener("click", () => undo(undoButton.dataset.action, undoButton));
  document.querySelectorAll(".bulk-undo-old").forEach((b) => b.addEventListener("click", () => undo(b.dataset.action, b)));

  updateForm();
  paint();
})();
