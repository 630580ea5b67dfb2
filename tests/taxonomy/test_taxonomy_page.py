"""The /taxonomy editor's forms: names in titles, signed versions, the Key form, and a refused change kept."""

from __future__ import annotations

import html
import re

from tests.factories import add_class

HTMX = {"HX-Request": "true"}


def _ids(client) -> dict[str, str]:
    return {c["name"]: str(c["id"]) for c in client.get("/api/taxonomy").json()["classes"]}


def test_form_changes_are_titled_with_names_and_signed(client):
    for name in ("Sandal", "Sneaker", "Bag"):
        add_class(client, name)
    ids = _ids(client)
    r = client.post("/taxonomy/changes", headers=HTMX, data={
        "op": "merge", "classes": [ids["Sandal"], ids["Sneaker"]], "into": "Shoe", "author": "ana", "base_version": "3"})
    notice = html.unescape(re.search(r'class="notice"[^>]*>(.*?)</p>', r.text).group(1))
    assert notice == "Saved as a new version (v4): merged 'Sandal', 'Sneaker' into 'Shoe' (new); 0 labels moved; 'Shoe' gets key 4."
    assert "merge Sandal, Sneaker → Shoe" in r.text and "by ana" in r.text
    assert "Merged from Sandal and Sneaker in version 4." in r.text
    assert re.search(r"Keys kept by retired classes.*<kbd>1</kbd> Sandal, <kbd>2</kbd> Sneaker", r.text, re.S)
    assert "someone" not in r.text and "author not recorded" in r.text  # v1-v3 came through the API unsigned
    versions = client.get("/api/taxonomy/versions").json()["items"]
    assert (versions[-1]["message"], versions[-1]["author"]) == ("merge Sandal, Sneaker → Shoe", "ana")


def test_key_form_sets_and_clears_a_key(client):
    add_class(client, "Bag")
    bag = _ids(client)["Bag"]
    r = client.post("/taxonomy/changes", headers=HTMX, data={"op": "set-shortcut", "class": bag, "shortcut": "K",
                                                               "author": "ana"})
    assert "&#39;Bag&#39; key 1 → k" in r.text and "<kbd>k</kbd>" in r.text
    r = client.post("/taxonomy/changes", headers=HTMX, data={"op": "set-shortcut", "class": bag, "shortcut": "",
                                                               "author": "ana"})
    assert "&#39;Bag&#39; lost key k" in r.text
    assert client.get("/api/taxonomy").json()["classes"][0]["shortcut"] is None


def test_a_change_refused_for_a_stale_version_keeps_what_was_typed(client):
    add_class(client, "Bag")
    add_class(client, "Coat")  # someone else's change: the page was opened at version 1
    ids = _ids(client)
    typed = "Outerwear with sleeves, <below> the hip"
    r = client.post("/taxonomy/changes", headers=HTMX, data={
        "op": "describe", "class": ids["Bag"], "description": typed, "author": "ana", "base_version": "1"})
    assert "someone else changed the taxonomy first" in r.text and "current version is 2" in r.text
    form = r.text[r.text.index('id="describe-form"'):]
    form = form[:form.index("</form>")]
    assert "Outerwear with sleeves, &lt;below&gt; the hip</textarea>" in form
    assert f'<option value="{ids["Bag"]}" selected>' in form
    assert 'name="base_version" value="2"' in form  # submitting again builds on the version now current
    assert client.get("/api/taxonomy").json()["version"] == 2

    r = client.post("/taxonomy/changes", headers=HTMX, data={
        "op": "split", "class": ids["Bag"], "into": "Backpack, backpack", "author": "ana", "base_version": "2"})
    split = r.text[r.text.index('id="split-form"'):]
    assert 'value="Backpack, backpack"' in split[:split.index("</form>")] and "must differ" in r.text
    add = r.text[r.text.index('id="add-form"'):]
    assert 'value=""' in add[:add.index("</form>")]  # only the form that was sent comes back filled
