"""CVAT for images 1.1: annotations.xml as CVAT's documentation shows it imports; bad files are refused whole."""

from __future__ import annotations

from collections import Counter

from tests import fmnist
from tests.formats.common import library, refused, reimport

# The example of docs.cvat.ai "XML annotation format" (version 1.1, for images), cut to image-level tags, with
# the file names of real Fashion-MNIST images. The box on image 1 is a region: not read.
DOC = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>4</id>
      <name>fashion tags</name>
      <size>3</size>
      <mode>annotation</mode>
      <overlap>0</overlap>
      <bugtracker></bugtracker>
      <flipped>False</flipped>
      <created>2024-05-02 10:11:12.123456+00:00</created>
      <updated>2024-05-02 11:12:13.123456+00:00</updated>
      <labels>
        <label>
          <name>Coat</name>
          <type>tag</type>
          <attributes>
          </attributes>
        </label>
        <label>
          <name>Sneaker</name>
          <type>tag</type>
          <attributes>
          </attributes>
        </label>
      </labels>
      <owner>
        <username>admin</username>
        <email></email>
      </owner>
    </task>
    <dumped>2024-05-02 12:00:00.000000+00:00</dumped>
  </meta>
  <image id="0" name="{0}" width="28" height="28">
    <tag label="Coat" source="manual">
    </tag>
  </image>
  <image id="1" name="{1}" width="28" height="28">
    <box label="Sneaker" occluded="0" source="manual" xtl="1.00" ytl="2.00" xbr="20.00" ybr="21.00" z_order="0">
    </box>
    <tag label="Sneaker" source="manual">
    </tag>
  </image>
  <image id="2" name="{2}" width="28" height="28">
  </image>
</annotations>
"""


def _task(root):
    paths = fmnist.write_pngs(root / "images", 3)
    (root / "annotations.xml").write_text(DOC.format(*(p.name for p in paths)))
    return paths


def test_a_cvat_task_export_imports_its_tags(tmp_path):
    root = tmp_path / "task"
    _task(root)
    done = reimport(root, "cvat", tmp_path / "fresh", source="cvat")
    assert done.returncode == 0, done.stderr
    assert "labels: 2 added" in done.stdout and "1 files without a label" in done.stdout
    got = library(tmp_path / "fresh")
    assert Counter(x["class"] for x in got.values()) == {"Coat": 1, "Sneaker": 1, None: 1}
    assert {x["annotator"] for x in got.values() if x["class"]} == {"import:annotations.xml"}


def test_bad_cvat_files_are_refused_with_the_image(tmp_path):
    root = tmp_path / "task"
    paths = _task(root)
    xml = root / "annotations.xml"
    good = xml.read_text()
    second = f'<image id="1" name="{paths[1].name}" width="28" height="28">'
    cases = {
        good.replace('<tag label="Coat" source="manual">', '<tag label="Coat" source="manual"></tag><tag label='
                     '"Sneaker" source="manual">'):
            f'annotations.xml <image id="0" name="{paths[0].name}">: 2 tags (Coat, Sneaker); Loupe gives an image '
            "one class",
        good.replace('<tag label="Sneaker"', '<tag label="Boot"'):
            f'annotations.xml <image id="1" name="{paths[1].name}">: tag \'Boot\' is not among the labels <meta> '
            "declares",
        good.replace("</annotations>", ""): "annotations.xml: not well-formed XML",
        good.replace(second, '<image id="1" width="28" height="28">'): "annotations.xml: <image> number 2 has no name",
        '<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY e "x">]>\n<annotations></annotations>\n':
            "annotations.xml: a DTD or entity declaration is not allowed in a label file",
    }
    for i, (text, sentence) in enumerate(cases.items()):
        xml.write_text(text)
        assert sentence in refused(root, "cvat", tmp_path / f"fresh{i}")
