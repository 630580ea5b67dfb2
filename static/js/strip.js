// Similar-image strips (templates/partials/_similar.html, on the image page and in the review evidence): a
// thumbnail opens its image; its checkbox (a click on the caption, or Tab and Space) selects it, and "Label N
// selected" labels the selection as one bulk action, previewed, confirmed and undoable as in Browse.
// Handlers are delegated: the review page swaps in a new strip with every flag.
(() => {
  const flows = new WeakMap();  // strip box -> its bulk steps, made on first use

  const boxOf = (el) => (el instanceof Element ? el.closest("[data-strip]") : null);
  const picked = (box) => [...box.querySelectorAll(".strip-item input:checked")].map((i) => Number(i.value));

  function paint(box) {
    box.querySelectorAll(".strip-item").forEach((li) => {
      li.classList.toggle("selected", li.querySelector("input").checked);
    });
    const form = box.querySelector(".strip-bulk");
    if (!form) return;
    const n = picked(box).length;
    const apply = form.querySelector(".strip-apply");
    apply.textContent = `Label ${n} selected`;
    apply.disabled = n === 0 || !form.elements.namedItem("class").value;
  }

  // Today's label of each image under its thumbnail (after a change here, or its undo).
  async function refreshCaptions(box, ids) {
    await Promise.all(ids.map(async (id) => {
      const response = await fetch(`/api/images/${id}`);
      if (!response.ok) return;
      const image = await response.json();
      const name = (image.label && image.label.class) || "unlabelled";
      const li = box.querySelector(`.strip-item[data-id="${id}"]`);
      if (!li) return;
      li.querySelector(".similar-label").textContent = name;
      li.querySelector(".strip-pick").title = name;
    }));
    box.dataset.refreshed = String(Number(box.dataset.refreshed || 0) + 1);  // tests wait on this
  }

  // The page around the strip may care (review: labelling a neighbour can settle the flag itself).
  const changed = (box) => box.dispatchEvent(new CustomEvent("loupe:strip-labelled", { bubbles: true }));

  function flow(box) {
    if (!flows.has(box)) {
      const q = (sel) => box.querySelector(sel);
      let labelled = [];
      flows.set(box, window.loupe.bulkSteps({
        confirm: q(".strip-confirm"), confirmText: q(".strip-confirm-text"), yes: q(".strip-yes"), no: q(".strip-no"),
        done: q(".strip-done"), doneText: q(".strip-done-text"), undo: q(".strip-undo"),
      }, {
        onDone() {
          labelled = picked(box);
          box.querySelectorAll(".strip-item input:checked").forEach((i) => { i.checked = false; });
          paint(box);
          refreshCaptions(box, labelled);
          changed(box);
        },
        onUndone() { refreshCaptions(box, labelled); changed(box); },
      }));
    }
    return flows.get(box);
  }

  document.addEventListener("change", (e) => {
    const box = boxOf(e.target);
    if (!box) return;
    paint(box);
    if (box.querySelector(".strip-bulk")) flow(box).hide();  // the selection changed: preview it again
  });

  document.addEventListener("submit", async (e) => {
    const form = e.target instanceof Element ? e.target.closest(".strip-bulk") : null;
    if (!form) return;
    e.preventDefault();
    const box = boxOf(form);
    const images = picked(box);
    const cls = form.elements.namedItem("class").value;
    if (!images.length) { window.loupe.toast("select some images first", "info"); return; }
    if (!cls) { window.loupe.toast("choose a class first", "info"); return; }
    const steps = flow(box);
    const annotator = steps.annotator();
    if (!annotator) return;
    await steps.preview({ action: "label", class: Number(cls), images, annotator });
  });
})();
