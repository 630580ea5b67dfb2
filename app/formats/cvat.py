"""CVAT for images 1.1 (`annotations.xml`), both ways: an image-level `<tag>` is the image's class.

The documented shape (docs.cvat.ai, "XML annotation format", version 1.1, and
the "CVAT for images" export: `images/` beside `annotations.xml`):

    <annotations>
      <version>1.1</version>
      <meta><task>... <labels><label><name>cat</name> ...</label></labels> ...</task></meta>
      <image id="0" name="cat_01.jpg" width="640" height="480">
        <tag label="cat" source="manual"></tag>
      </image>
    </annotations>

Reading: one `<tag>` per image is its label; an image without one is listed
unlabelled; boxes, polygons and other shapes are about regions, not the image,
and are not read. Two different tags on one image are refused (a Loupe
taxonomy is single-label). A tag's label must be among the labels `<meta>`
declares, when it declares any (CVAT never writes one that is not). CVAT 1.1
says nothing of who made a tag or when, so the import's own name and time are
used, unless the tag carries the attributes Loupe writes.

Writing (`--format cvat`): `images/<file>` and `annotations.xml` with the task
meta (name, size, the labels as tag labels with text attributes) and, per
image, its `<tag label=... source="manual">` with attributes confidence,
annotator, tags (";"-separated), labelled_at and source, and the split as the
image's `subset` (as CVAT project exports write it). The fold is dropped.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element, ElementTree, SubElement, indent

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError
from defusedxml.ElementTree import parse as safe_parse

from app.errors import InvalidInput
from app.formats.rows import Given, ManifestRow, confidence_of, tags_of, text_of, time_of
from app.timeutil import iso, utcnow

NAMES = ("annotations.xml",)
ATTRIBUTES = ("confidence", "annotator", "tags", "labelled_at", "source")  # what Loupe adds to a tag
DROPS = ("fold",)
SUBSETS = {"train": "Train", "val": "Validation", "test": "Test"}  # CVAT's default subset names


# -- reading -------------------------------------------------------------------------------------------------

def detect(path: Path) -> bool:
    """An .xml file whose root element is <annotations> (CVAT's)."""
    if path.suffix.lower() != ".xml":
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return b"<annotations" in head


def find(paths: list[Path]) -> Path | None:
    for path in map(Path, paths):
        if path.is_file() and path.name in NAMES:
            return path
        if path.is_dir():
            found = sorted(path.glob("annotations.xml")) or sorted(path.glob("*/annotations.xml"))
            if found:
                return found[0]
    return None


def _root(path: Path) -> Element:
    try:
        root = safe_parse(path, forbid_dtd=True).getroot()
    except DefusedXmlException:
        raise InvalidInput(f"{path.name}: a DTD or entity declaration is not allowed in a label file") from None
    except ParseError as exc:
        raise InvalidInput(f"{path.name}: not well-formed XML ({exc})") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path.name}: {exc}") from None
    if root.tag != "annotations":
        raise InvalidInput(f"{path.name}: the root element is <{root.tag}>, not CVAT's <annotations>")
    return root


def read(path: Path) -> list[ManifestRow]:
    path = Path(path)
    root = _root(path)
    declared = {text_of(n.text) for n in root.iterfind("meta/*/labels/label/name")}
    rows = []
    for n, image in enumerate(root.iter("image"), 1):
        name = (image.get("name") or "").strip()
        where = f"{path.name} <image id=\"{image.get('id', '?')}\" name=\"{name}\">"
        if not name:
            raise InvalidInput(f"{path.name}: <image> number {n} has no name")
        tags = image.findall("tag")
        labels = {text_of(t.get("label")) for t in tags}
        if "" in labels:
            raise InvalidInput(f"{where}: a <tag> without a label")
        if len(labels) > 1:
            raise InvalidInput(f"{where}: {len(labels)} tags ({', '.join(sorted(labels))}); Loupe gives an image "
                               "one class")
        if not labels:
            rows.append(ManifestRow(n, name, None))
            continue
        label = labels.pop()
        if declared and label not in declared:
            raise InvalidInput(f"{where}: tag '{label}' is not among the labels <meta> declares")
        attrs = {a.get("name"): a.text or "" for a in tags[0].iterfind("attribute")}
        rows.append(ManifestRow(n, name, Given(
            label, confidence_of(attrs.get("confidence"), where), tags_of(attrs.get("tags"), where),
            text_of(attrs.get("annotator"))[:100], time_of(attrs.get("labelled_at"), where))))
    return rows


# -- writing (loupe export --format cvat) ----------------------------------------------------------------------

def layout(row: dict, fmt: str) -> str:
    return f"images/{row['name']}"


def _meta(root: Element, rows: list[dict], info: dict) -> None:
    task = SubElement(SubElement(root, "meta"), "task")
    for key, value in (("id", info["snapshot"]["id"]), ("name", info["snapshot"]["name"]), ("size", len(rows)),
                       ("mode", "annotation"), ("overlap", 0), ("flipped", "False")):
        SubElement(task, key).text = str(value)
    labels = SubElement(task, "labels")
    for name in info["classes"]:
        label = SubElement(labels, "label")
        SubElement(label, "name").text = name
        SubElement(label, "type").text = "tag"
        attributes = SubElement(label, "attributes")
        for attr in ATTRIBUTES:
            a = SubElement(attributes, "attribute")
            for key, value in (("name", attr), ("mutable", "False"), ("input_type", "text"),
                               ("default_value", ""), ("values", "")):
                SubElement(a, key).text = value
    SubElement(root.find("meta"), "dumped").text = iso(utcnow())


def write(out: Path, rows: list[dict], info: dict, fmt: str) -> None:
    root = Element("annotations")
    SubElement(root, "version").text = "1.1"
    _meta(root, rows, info)
    for n, r in enumerate(rows):
        image = SubElement(root, "image", id=str(n), name=r["name"], subset=SUBSETS.get(r["split"], r["split"]),
                           width=str(r["width"] or 0), height=str(r["height"] or 0))
        tag = SubElement(image, "tag", label=r["label"], source="manual")
        values = {"confidence": r["confidence"], "annotator": r["annotator"], "tags": ";".join(r["tags"]),
                  "labelled_at": r["labelled_at"], "source": r["source"]}
        for attr in ATTRIBUTES:
            SubElement(tag, "attribute", name=attr).text = "" if values[attr] is None else str(values[attr])
    indent(root)
    ElementTree(root).write(out / "annotations.xml", encoding="utf-8", xml_declaration=True)
