"""`loupe` command line: parses arguments and calls the domain; no logic of its own."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import subprocess
import sys
from pathlib import Path

from app.formats import READERS, WRITERS


def _settings(data: str | None):
    from app.config import Settings

    if data:
        os.environ["LOUPE_DATA"] = data
    return Settings(data=Path(data)) if data else Settings()


def _die_with_parent(parent: int) -> None:
    """In the worker child, before exec: SIGTERM it when serve dies, even by SIGKILL (Linux prctl)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker's parent watch (app.training.worker) covers it
        return
    if os.getppid() != parent:  # serve died between fork and prctl
        os.kill(os.getpid(), signal.SIGTERM)


def _start_worker(settings) -> subprocess.Popen:
    """The local worker: a separate process, so the web app never imports torch. It lives only as long as
    serve: the kernel signals it when serve dies (prctl), and it watches its parent itself (LOUPE_PARENT_PID)."""
    from app.training.worker import PARENT_ENV

    parent = os.getpid()
    preexec = (lambda: _die_with_parent(parent)) if sys.platform.startswith("linux") else None
    return subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--data", str(settings.data_dir)],
                            env={**os.environ, PARENT_ENV: str(parent)}, preexec_fn=preexec)


def _stop_worker(worker: subprocess.Popen) -> None:
    worker.terminate()  # the worker gives its job back to the queue
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()


class _Terminated(Exception):
    """SIGTERM reached serve."""


def _on_sigterm(signum, frame):
    # uvicorn shuts down on SIGTERM, restores this handler and raises the signal again: with the default
    # handler the process would die there, before `finally` stops the worker (issue 13: an orphaned worker).
    raise _Terminated()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.db.migrate import upgrade_head
    from app.main import create_app

    settings = _settings(args.data)
    settings.host = args.host
    if settings.token:
        print("loupe serve: LOUPE_TOKEN is no longer used: create users (loupe user add) and API tokens "
              "(loupe token create), then unset it", file=sys.stderr)
        return 2
    settings.ensure_dirs()
    if problem := _store_problem(settings):
        print(f"loupe serve: {problem}", file=sys.stderr)
        return 2
    upgrade_head(settings.database_url)  # before the worker starts, so both see one schema
    if settings.login_required and not _has_admin(settings):
        print(f"loupe serve: refusing to listen on {args.host} without logins (anyone who can reach it could read "
              f"and change your labels): first create an admin with "
              f"`loupe user add NAME --role admin --data {settings.data_dir}`", file=sys.stderr)
        return 2
    app = create_app(settings)
    worker = None if args.no_worker else _start_worker(settings)
    print(f"Loupe is ready at http://{args.host}:{args.port}  (data: {settings.data_dir}"
          f"{', no worker' if worker is None else ', one local worker'})", flush=True)
    # What is loaded by now lives as long as the server: out of the collector's sight, a full collection
    # walks only what requests made (else a 95 ms pause every few hundred grid pages, measured).
    gc.freeze()
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    except _Terminated:
        pass
    finally:
        if worker is not None:
            _stop_worker(worker)
    return 0


def _store_problem(settings) -> str | None:
    """Why the image store (LOUPE_STORE_URL) cannot be used, found at start rather than on the first upload."""
    from app.errors import LoupeError
    from app.images.blobs import for_settings

    try:
        for_settings(settings).check()
    except LoupeError as exc:
        return exc.detail
    return None


def _has_admin(settings) -> bool:
    from app.accounts.users import has_admin
    from app.db.engine import Database

    db = Database(settings.database_url)
    try:
        with db.reading() as session:
            return has_admin(session)
    finally:
        db.dispose()


def cmd_worker(args: argparse.Namespace) -> int:
    import logging

    from app.training.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = _settings(args.data)
    if problem := _store_problem(settings):
        print(f"loupe worker: {problem}", file=sys.stderr)
        return 2
    run_worker(settings, once=args.once)
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
            from app.labelling.imported import import_labelled

            report, labels = import_labelled(db, settings, [Path(p) for p in args.paths], source=args.source,
                                             labels=args.labels, on_progress=bar)
        else:
            report = import_paths(db, settings, [Path(p) for p in args.paths], source=args.source, on_progress=bar)
        from app.training.jobs import predict_after_import

        predict_job = predict_after_import(db, len(report.imported))
    except LoupeError as exc:
        print(f"loupe import: {exc.detail}", file=sys.stderr)
        return 2
    finally:
        bar.close()
        db.dispose()
    print(summary(report))
    if predict_job is not None:
        print(f"queued predict job #{predict_job}: the latest model's suggestions for the new images")
    if labels is not None:
        from app.labelling.imported import summary as label_summary

        print(label_summary(labels))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from app.db.engine import Database
    from app.db.migrate import upgrade_head
    from app.errors import LoupeError
    from app.snapshots.export import export_snapshot
    from app.snapshots.queries import get_snapshot

    settings = _settings(args.data)
    if settings.is_sqlite and not settings.database_path.exists():
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


def _accounts(args: argparse.Namespace, command: str, act) -> int:
    """Run `act(db)` on a migrated database; a LoupeError becomes one line on stderr and exit status 2."""
    from app.db.engine import Database
    from app.db.migrate import upgrade_head
    from app.errors import LoupeError

    settings = _settings(args.data)
    settings.ensure_dirs()
    upgrade_head(settings.database_url)
    db = Database(settings.database_url)
    try:
        act(db)
    except LoupeError as exc:
        print(f"loupe {command}: {exc.detail}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    return 0


def _password(args: argparse.Namespace) -> str:
    from app.errors import InvalidInput

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    password = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("the same again: ") != password:
        raise InvalidInput("the two passwords differ; nothing was changed")
    return password


def cmd_user(args: argparse.Namespace) -> int:
    from app.accounts import users
    from app.timeutil import iso

    def act(db):
        if args.action == "list":
            with db.reading() as session:
                for u in users.list_users(session):
                    print(f"{u.name}\t{u.role}\tcreated {iso(u.created_at)}")
            return
        password = _password(args) if args.action in ("add", "passwd") else ""
        with db.writing() as session:
            if args.action == "add":
                users.add_user(session, name=args.name, role=args.role, password=password)
                print(f"added {args.role} '{args.name}'")
            elif args.action == "passwd":
                users.set_password(session, name=args.name, password=password)
                print(f"changed the password of '{args.name}' (their sessions ended)")
            elif args.action == "role":
                users.set_role(session, name=args.name, role=args.role)
                print(f"'{args.name}' is now {args.role}")
            elif args.action == "remove":
                users.remove_user(session, name=args.name)
                print(f"removed '{args.name}' with their sessions and API tokens")

    try:
        return _accounts(args, "user", act)
    except KeyboardInterrupt:
        return 130


def cmd_token(args: argparse.Namespace) -> int:
    from app.accounts import tokens
    from app.timeutil import iso

    def act(db):
        if args.action == "list":
            with db.reading() as session:
                for t, user in tokens.list_tokens(session):
                    print(f"{t.name}\t{user}\tcreated {iso(t.created_at)}\tlast used {iso(t.last_used_at) or 'never'}")
            return
        with db.writing() as session:
            if args.action == "create":
                secret = tokens.create_token(session, name=args.name, user_name=args.user)
                print(secret)  # stdout holds only the token: TOKEN=$(loupe token create ...)
                print(f"token '{args.name}' acts as '{args.user}'; it is shown only now. Send it as "
                      "'Authorization: Bearer TOKEN'", file=sys.stderr)
            elif args.action == "revoke":
                tokens.revoke_token(session, name=args.name)
                print(f"revoked token '{args.name}'")

    return _accounts(args, "token", act)


def _account_parsers(sub) -> None:
    from app.accounts.users import ROLES

    data_help = "data directory (default: $LOUPE_DATA or ./loupe-data)"
    user = sub.add_parser("user", help="users who log in (needed to listen beyond loopback)")
    user.set_defaults(func=cmd_user)
    acts = user.add_subparsers(dest="action", required=True)
    add = acts.add_parser("add", help="add a user (asks for the password)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES,
                     help="labeller: labels and tags; reviewer: also flags and audits; admin: everything")
    passwd = acts.add_parser("passwd", help="set a user's password (ends their sessions)")
    passwd.add_argument("name")
    for p in (add, passwd):
        p.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of stdin")
    role = acts.add_parser("role", help="change a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    remove = acts.add_parser("remove", help="remove a user with their sessions and tokens (labels stay)")
    remove.add_argument("name")
    listing = acts.add_parser("list", help="list users and roles")
    for p in (add, passwd, role, remove, listing):
        p.add_argument("--data", help=data_help)

    token = sub.add_parser("token", help="API tokens for scripts (Authorization: Bearer ...)")
    token.set_defaults(func=cmd_token)
    acts = token.add_subparsers(dest="action", required=True)
    create = acts.add_parser("create", help="create a token and print it (only this once)")
    create.add_argument("name", help="what the token is for, e.g. nightly-import")
    create.add_argument("--user", required=True, help="the user it acts as (with that user's role)")
    revoke = acts.add_parser("revoke", help="revoke a token: it stops working at once")
    revoke.add_argument("name")
    listing = acts.add_parser("list", help="list tokens, their users and when they were last used")
    for p in (create, revoke, listing):
        p.add_argument("--data", help=data_help)


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
    imp.add_argument("--labels", metavar="FORMAT_OR_FILE",
                     help="bring existing labels in: 'folders' (class folders), a label file (a CSV / JSONL "
                          f"manifest, or another tool's export), or a format's name ({', '.join(READERS)}) to "
                          "find its usual file among PATH")
    imp.add_argument("--data", help="data directory (default: $LOUPE_DATA or ./loupe-data)")
    imp.set_defaults(func=cmd_import)

    exp = sub.add_parser("export", help="export a snapshot as ImageFolder, files with a CSV / JSONL manifest, or "
                                        "another tool's dataset")
    exp.add_argument("snapshot", metavar="SNAPSHOT", help="snapshot id or name")
    exp.add_argument("--format", required=True, choices=list(WRITERS))
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

    _account_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
