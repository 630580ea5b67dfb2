// The taxonomy editor signs every version: the name typed here is the one the labelling page keeps
// (localStorage "loupe.annotator"), and app.js sends it with each change. No name, no change.
document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("taxonomy-author");
  if (!input) return;  // signed in: the server signs with the user's name
  const missing = document.getElementById("author-missing");
  input.value = localStorage.getItem("loupe.annotator") || "";
  input.addEventListener("input", () => {
    const name = input.value.trim();
    if (name) localStorage.setItem("loupe.annotator", name);
    else localStorage.removeItem("loupe.annotator");  // an emptied field signs nothing in the old name
    missing.hidden = true;
  });
  document.addEventListener("htmx:beforeRequest", (e) => {
    if (!e.detail.elt.closest("[data-send-author]") || localStorage.getItem("loupe.annotator")) return;
    e.preventDefault();
    missing.hidden = false;
    input.focus();
  });
});
