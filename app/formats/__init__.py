"""Label files, Loupe's own and other tools', both ways: read with their labels on import, written on export.

Pure code over files (no database), so labelling (import) and snapshots
(export) both use it. One module per format, holding both directions:

- reading: `read(path) -> list[ManifestRow]` (each file's label, with who and
  when where the format says), `detect(path) -> bool` (is this file in the
  format?) and `find(paths) -> Path | None` (the format's usual label file
  inside the imported folders, for `--labels NAME`);
- writing: `layout(row) -> str` (where an image goes in the export) and
  `write(out, rows, info) -> None` (its label files), with `DROPS`: the
  fields of a Loupe label the format cannot carry (reported in the export's
  loupe-export.json, and checked by the round-trip tests) and `PREDICTIONS`
  (True where the format carries a model's guesses: the export's rows then
  hold the latest model's `prediction`).

A row may carry a `suggestion` (a model's guess from the file, e.g. Label
Studio's predictions): it is stored as an "import" job's suggestion, never as
a label. Formats that key images by file stem (FiftyOne) set `stem`.

`READERS` and `WRITERS` name the modules; a format a reader cannot take is a
clear error naming the ones it can.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from app.errors import InvalidInput

# name -> module under app.formats. "loupe" is Loupe's own CSV / JSONL manifest (what `loupe export` writes).
READERS = {"hf": "hf", "label-studio": "labelstudio", "cvat": "cvat", "fiftyone": "fiftyone", "loupe": "manifest"}
WRITERS = {"imagefolder": "manifest", "csv": "manifest", "jsonl": "manifest", "hf": "hf", "cvat": "cvat",
           "fiftyone": "fiftyone", "label-studio": "labelstudio"}
FOLDERS = "folders"  # --labels folders: a file's class is its parent folder's name (ImageFolder)


def module(name: str, table: dict[str, str]) -> ModuleType:
    return importlib.import_module(f"app.formats.{table[name]}")


def reader_for(spec: str, paths: list[Path]) -> tuple[str, Path]:
    """The format and file `--labels SPEC` means: a format's name (its usual file is looked for in `paths`), or a
    label file whose format is recognised from its content."""
    if spec in READERS:
        found = module(spec, READERS).find(paths)
        if found is None:
            raise InvalidInput(f"--labels {spec}: no {spec} label file found in {', '.join(map(str, paths))}; "
                               "give its path instead")
        return spec, found
    path = Path(spec)
    if not path.is_file():
        names = ", ".join([FOLDERS, *READERS])
        raise InvalidInput(f"--labels: no such manifest file: {spec} (give a label file, or name a format: {names})")
    for name in READERS:
        if module(name, READERS).detect(path):
            return name, path
    if path.suffix.lower() in (".csv", ".jsonl"):  # Loupe's manifest, read to say exactly what is wrong with it
        return "loupe", path
    raise InvalidInput(f"--labels: {path.name} is neither a .csv nor a .jsonl manifest, nor a label file of the "
                       f"formats Loupe reads ({', '.join(READERS)})")
