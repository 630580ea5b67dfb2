"""`loupe` command line: parses arguments and calls the domain; no logic of its own."""

from __future__ import annotations

import argparse
import ipaddress
import os
import subprocess
import sys
from pathlib import Path


def _settings(data: str | None):
    from app.config import Settings

    if data:
        os.environ["LOUPE_DATA"] = data
    return Settings(data=Path(data)) if data else Settings()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _start_worker(settings) -> subprocess.Popen:
    """The local worker: a separate process, so the web app never imports torch."""
    return subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--data", str(settings.data_dir)])


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.db.migrate import upgrade_head
    from app.main import create_app

    settings = _settings(args.data)
    if not _is_loopback(args.host) and not settings.token:
        print(
            f"refusing to listen on {args.host}: set LOUPE_TOKEN to a secret first "
            "(anyone who can reach this address could otherwise read and change your labels)",
            file=sys.stderr,
        )
        return 2
    settings.ensure_dirs()
    upgrade_head(settings.database_url)  # before the worker starts, so both see one schema
    app = create_app(settings)
    worker = None if args.no_worker else _start_worker(settings)
    print(f"Loupe is ready at http://{args.host}:{args.port}  (data: {settings.data_dir}"
          f"{', no worker' if worker is None else ', one local worker'})", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        if worker is not None:
            worker.terminate()  # the worker gives its job back to the queue
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import logging

    from app.training.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run_worker(_settings(args.data), once=args.once)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from app.db.engine import Database
    from app.db.migrate import upgrade_head
    from app.errors import LoupeError
    from app.images.ingest import import_paths
    from app.images.progress import ProgressBar, summary

    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        print(f"loupe import: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    settings = _settings(args.data)
    settings.ensure_dirs()
    upgrade_head(settings.database_url)
    db = Database(settings.database_url)
    bar = ProgressBar(sys.stderr)
    labels = None
    try:
        if args.labels:
            from app.images.labelled import import_labelled

            report, labels = import_labelled(db, settings, [Path(p) for p in args.paths], source=args.source,
                                             labels=args.labels, on_progress=bar)
        else:
            report = import_paths(db, settings, [Path(p) for p in args.paths], source=args.source, on_progress=bar)
    except LoupeError as exc:
        print(f"loupe import: {exc.detail}", file=sys.stderr)
        return 2
    finally:
        bar.close()
        db.dispose()
    print(summary(report))
    if labels is not None:
        from app.images.labelled import summary as label_summary

        print(label_summary(labels))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from app.db.engine import Database
    from app.db.migrate import upgrade_head
    from app.errors import LoupeError
    from app.snapshots.export import export_snapshot
    from app.snapshots.queries import get_snapshot

    settings = _settings(args.data)
    if not settings.database_path.exists():
        print(f"loupe export: no Loupe data in {settings.data_dir}", file=sys.stderr)
        return 2
    upgrade_head(settings.database_url)
    db = Database(settings.database_url)
    try:
        with db.reading() as session:
            snapshot = get_snapshot(session, args.snapshot)
            done = export_snapshot(session, settings, snapshot, fmt=args.format, out=Path(args.out))
    except LoupeError as exc:
        print(f"loupe export: {exc.detail}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    splits = ", ".join(f"{k} {v}" for k, v in sorted(done["splits"].items()))
    print(f"exported snapshot '{snapshot.name}' ({done['images']} images: {splits}) as {args.format} to {done['out']}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from app.backup.make import make_backup
    from app.errors import LoupeError

    try:
        report = make_backup(_settings(args.data), Path(args.out))
    except LoupeError as exc:
        print(f"loupe backup: {exc.detail}", file=sys.stderr)
        return 2
    counts = report.tables
    print(f"backed up {counts.get('images', 0)} images, {counts.get('label_events', 0)} label events and "
          f"{report.files} files ({report.bytes / 1e6:.1f} MB) to {report.out} in {report.seconds:.1f} s")
    if report.missing:
        print(f"warning: {len(report.missing)} original files were missing from the store, "
              f"e.g. {report.missing[0]}", file=sys.stderr)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from app.backup.restore import restore_backup
    from app.errors import LoupeError

    try:
        report = restore_backup(Path(args.file), Path(args.data))
    except LoupeError as exc:
        print(f"loupe restore: {exc.detail}", file=sys.stderr)
        return 2
    print(f"restored {report.tables.get('images', 0)} images, {report.tables.get('label_events', 0)} label events "
          f"and {report.files} files into {report.data_dir}; start it with: loupe serve --data {report.data_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loupe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start the web app")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--data", help="data directory (default: $LOUPE_DATA or ./loupe-data)")
    serve.add_argument("--no-worker", action="store_true", help="do not start a local training worker")
    serve.set_defaults(func=cmd_serve)

    wrk = sub.add_parser("worker", help="claim and run training jobs until stopped")
    wrk.add_argument("--data", help="data directory (default: $LOUPE_DATA or ./loupe-data)")
    wrk.add_argument("--once", action="store_true", help="exit when the queue is empty")
    wrk.set_defaults(func=cmd_worker)

    imp = sub.add_parser("import", help="import images from files, folders (recursively) and zip archives")
    imp.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or .zip archives")
    imp.add_argument("--source", required=True, help="where these images come from (created if new)")
    imp.add_argument("--labels", metavar="folders|FILE.csv|FILE.jsonl",
                     help="bring existing labels in: from class folders, or from a manifest with file and label columns")
    imp.add_argument("--data", help="data directory (default: $LOUPE_DATA or ./loupe-data)")
    imp.set_defaults(func=cmd_import)

    exp = sub.add_parser("export", help="export a snapshot as ImageFolder, or files with a CSV / JSONL manifest")
    exp.add_argument("snapshot", metavar="SNAPSHOT", help="snapshot id or name")
    exp.add_argument("--format", required=True, choices=["imagefolder", "csv", "jsonl"])
    exp.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) folder to write")
    exp.add_argument("--data", help="data directory (default: $LOUPE_DATA or ./loupe-data)")
    exp.set_defaults(func=cmd_export)

    bak = sub.add_parser("backup", help="copy the database and image store to one file, while the app runs")
    bak.add_argument("--out", required=True, metavar="FILE", help="the backup file to write (a tar archive)")
    bak.add_argument("--data", help="data directory (default: $LOUPE_DATA or ./loupe-data)")
    bak.set_defaults(func=cmd_backup)

    res = sub.add_parser("restore", help="unpack a backup into a new data directory")
    res.add_argument("file", metavar="FILE", help="a file written by loupe backup")
    res.add_argument("--data", required=True, help="a new (or empty) data directory to restore into")
    res.set_defaults(func=cmd_restore)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
