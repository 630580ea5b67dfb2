"""Access over HTTP: each refusal with logins required, and the cross-site guard on loopback without logins."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.accounts.tokens import revoke_token
from app.db.models import ApiToken, LoginAttempt, UserSession
from app.main import create_app
from tests.factories import add_class, label, near_duplicates, upload, upload_fmnist
from tests.logins import HTML, PASSWORD, csrf_of, log_in, make_token, make_user, user_client

CHANGE = {"op": "add", "name": "shirt"}


def _classes(client) -> list[str]:
    return sorted(c["name"] for c in client.get("/api/taxonomy").json()["classes"])


def _signed_in(app, db, name: str, role: str) -> TestClient:
    """A logged-in client that sends its CSRF token with every request (as app.js does)."""
    client, headers = user_client(app, db, name, role)
    client.headers.update(headers)
    return client



def _snapshot(admin, *, labeller) -> dict:
    """Two classes, four images labelled by `labeller`, frozen by the admin: enough to launch a train job."""
    for name in ("shirt", "coat"):
        add_class(admin, name)
    for image, cls in zip(upload_fmnist(admin, 4), ("shirt", "coat") * 2):
        label(labeller, image, cls)  # labelling is allowed to a labeller
    r = admin.post("/api/snapshots", json={"name": "s1", "split": {"val": 0.5, "folds": 2}})
    assert r.status_code == 201, r.text
    return r.json()


def test_without_a_login_the_api_gets_401_and_pages_go_to_the_login_form(login_app):
    c = TestClient(login_app)
    r = c.get("/api/taxonomy")
    assert r.status_code == 401 and "log in" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
    assert c.post("/api/taxonomy/changes", json=CHANGE).status_code == 401
    r = c.get("/label?queue=audit", headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Flabel%3Fqueue%3Daudit"
    # htmx asks for a fragment: it is sent to the login page with the page it came from as `next`.
    r = c.get("/label/stage", headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/label"})
    assert r.status_code == 401 and r.headers["hx-redirect"] == "/login?next=%2Flabel"
    for open_path in ("/healthz", "/login", "/static/js/app.js"):
        assert c.get(open_path).status_code == 200, open_path


def test_a_wrong_password_or_unknown_name_is_refused(login_app, db):
    make_user(db, "ana", "labeller")
    c = TestClient(login_app)
    for name, password in (("ana", "not the password"), ("nobody", PASSWORD), ("", "")):
        r = c.post("/login", data={"name": name, "password": password}, follow_redirects=False)
        assert r.status_code in (401, 422) and "set-cookie" not in r.headers
        assert 'class="error"' in r.text and "Traceback" not in r.text
    assert "wrong user name or password" in c.post("/login", data={"name": "nobody", "password": "x"}).text
    assert c.get("/api/taxonomy").status_code == 401

    r = c.post("/login", data={"name": "ana", "password": PASSWORD, "next": "/browse?status=unlabelled"},
               follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/browse?status=unlabelled"
    assert c.get("/api/taxonomy").status_code == 200
    r = c.post("/login", data={"name": "ana", "password": PASSWORD, "next": "//evil.example/"}, follow_redirects=False)
    assert r.headers["location"] == "/"  # never an open redirect


def test_logins_are_rate_limited_per_name_and_address(login_app, db, settings):
    make_user(db, "ana", "admin")
    c = TestClient(login_app)
    right = {"name": "ana", "password": PASSWORD}
    for _ in range(settings.login_max_failures):
        assert c.post("/login", data={"name": "ana", "password": "guess"}).status_code == 401
    for attempt in (right, {"name": "ANA", "password": PASSWORD}):  # the right password too, whatever the case
        r = c.post("/login", data=attempt, follow_redirects=False)
        assert r.status_code == 429 and "set-cookie" not in r.headers
        assert 0 < int(r.headers["retry-after"]) <= settings.login_window_s + 1
        assert "too many failed logins" in r.text
    # The failures are rows in the database: a restarted app (or a second process) refuses as well.
    with TestClient(create_app(settings)) as restarted:
        assert restarted.post("/login", data=right, follow_redirects=False).status_code == 429
    # Someone else's address is not locked out by these failures.
    other = TestClient(login_app, client=("192.0.2.7", 50000))
    assert other.post("/login", data=right, follow_redirects=False).status_code == 303
    # The lock lifts when the window has passed, and a success clears the failures.
    with db.writing() as s:
        for attempt in s.scalars(select(LoginAttempt)):
            attempt.created_at = attempt.created_at.replace(year=attempt.created_at.year - 1)
        s.commit()
    assert c.post("/login", data=right, follow_redirects=False).status_code == 303
    with db.reading() as s:
        assert s.scalar(select(func.count()).select_from(LoginAttempt)) == 0


def test_a_labeller_may_label_but_not_change_the_taxonomy_launch_jobs_or_upload(login_app, db):
    admin = _signed_in(login_app, db, "root", "admin")
    lou = _signed_in(login_app, db, "lou", "labeller")
    snap = _snapshot(admin, labeller=lou)
    job = {"kind": "train", "snapshot": snap["id"], "config": {"epochs": 1}}

    r = lou.post("/api/taxonomy/changes", json={"op": "add", "name": "coat"})
    assert r.status_code == 403 and r.json()["detail"] == "'lou' is a labeller; this needs the admin role"
    assert lou.post("/api/jobs", json=job).status_code == 403
    assert lou.post("/jobs", data={"snapshot": snap["id"]}).status_code == 403
    r = lou.post("/api/images", data={"source": "web"}, files=[("files", ("x.png", b"\x89PNG", "image/png"))])
    assert r.status_code == 403
    r = lou.post("/taxonomy/changes", data={"op": "add", "name": "coat"}, headers=HTML)
    assert r.status_code == 403 and "needs the admin role" in r.text and "<nav" in r.text  # the error page
    assert _classes(admin) == ["coat", "shirt"] and admin.get("/api/images").json()["total"] == 4
    assert admin.get("/api/jobs").json()["items"] == []
    assert lou.get("/taxonomy", headers=HTML).status_code == 200  # reading is for everyone logged in
    assert admin.post("/api/jobs", json=job).status_code == 201


def test_a_reviewer_resolves_flags_but_may_not_change_the_taxonomy(login_app, db):
    admin = _signed_in(login_app, db, "root", "admin")
    rita = _signed_in(login_app, db, "rita", "reviewer")
    lou = _signed_in(login_app, db, "lou", "labeller")
    for name in ("shirt", "coat"):
        add_class(admin, name)
    ids = [x["id"] for x in upload(admin, near_duplicates(3), source="camera")["imported"]]
    for image, cls in zip(ids, ("shirt", "shirt", "coat")):
        label(lou, image, cls)
    assert lou.post("/api/quality/duplicates").status_code == 403
    assert rita.post("/api/quality/duplicates").json()["created"] == 3
    flag = next(f for f in rita.get("/api/flags", params={"kind": "duplicate"}).json()["items"] if f["image"] == ids[2])

    relabel = {"action": "relabel", "class": "shirt", "annotator": "someone else"}
    assert lou.post(f"/api/flags/{flag['id']}/resolve", json=relabel).status_code == 403
    r = rita.post(f"/api/flags/{flag['id']}/resolve", json=relabel)
    assert r.status_code == 200, r.text
    assert rita.get(f"/api/images/{ids[2]}").json()["label"]["annotator"] == "rita"
    r = rita.post("/api/taxonomy/changes", json={"op": "rename", "class": "coat", "name": "jacket"})
    assert r.status_code == 403 and "needs the admin role" in r.json()["detail"]
    assert _classes(admin) == ["coat", "shirt"]


def test_changes_need_the_sessions_csrf_token(login_app, db):
    make_user(db, "root", "admin")
    c = TestClient(login_app)
    token = log_in(c, "root")
    other = TestClient(login_app)
    other_token = log_in(other, "root")  # a second session of the same user has its own token
    assert other_token != token

    r = c.post("/api/taxonomy/changes", json=CHANGE)
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    for wrong in ("wrong", other_token, ""):
        assert c.post("/api/taxonomy/changes", json=CHANGE, headers={"X-CSRF-Token": wrong}).status_code == 403
    form = {"op": "add", "name": "shirt"}
    assert c.post("/taxonomy/changes", data=form, headers=HTML).status_code == 403
    assert c.post("/taxonomy/changes", data={**form, "csrf_token": other_token}, headers=HTML).status_code == 403
    assert _classes(c) == []

    r = c.post("/taxonomy/changes", data={**form, "csrf_token": token}, headers=HTML)
    assert r.status_code == 200 and "Saved as a new version" in r.text  # the form field reaches the route intact
    r = c.post("/api/taxonomy/changes", json={"op": "add", "name": "coat"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 201
    assert _classes(c) == ["coat", "shirt"]


def test_loopback_without_logins_refuses_changes_sent_from_another_site(settings):
    app = create_app(settings)
    c = TestClient(app, base_url="http://127.0.0.1:8000")
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "http://127.0.0.1:9999"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}):
        r = c.post("/api/taxonomy/changes", json=CHANGE, headers=headers)
        assert r.status_code == 403 and "another site" in r.json()["detail"], headers
    r = c.post("/taxonomy/changes", data=CHANGE, headers={**HTML, "Origin": "https://evil.example"})
    assert r.status_code == 403 and "another site" in r.text
    assert _classes(c) == []

    # Loupe's own pages (same origin), and scripts that send no Origin, may change things.
    same = {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"}
    assert c.post("/api/taxonomy/changes", json=CHANGE, headers=same).status_code == 201
    assert c.post("/api/taxonomy/changes", json={"op": "add", "name": "coat"}).status_code == 201
    # A DNS-rebinding page reaches 127.0.0.1 under its own host name: browsers saying so are refused.
    rebound = TestClient(app, base_url="http://rebound.example:8000")
    r = rebound.get("/api/taxonomy", headers={"Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 403 and "127.0.0.1" in r.json()["detail"]


def test_api_tokens_act_as_their_user_without_csrf_until_revoked(login_app, db):
    make_user(db, "root", "admin")
    make_user(db, "lou", "labeller")
    raw = make_token(db, "nightly", "root")
    c = TestClient(login_app)
    bearer = {"Authorization": f"Bearer {raw}"}
    assert c.post("/api/taxonomy/changes", json=CHANGE, headers=bearer).status_code == 201
    with db.reading() as s:
        token = s.scalar(select(ApiToken).where(ApiToken.name == "nightly"))
        assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest() and token.last_used_at is not None

    for unknown in ("loupe_" + "x" * 43, "not-a-token", ""):
        r = c.get("/api/taxonomy", headers={"Authorization": f"Bearer {unknown}"})
        assert r.status_code == 401 and r.json()["detail"] == "unknown or revoked API token"
    lou_token = make_token(db, "lou-script", "lou")
    r = c.post("/api/taxonomy/changes", json={"op": "add", "name": "coat"},
               headers={"Authorization": f"Bearer {lou_token}"})
    assert r.status_code == 403  # a token has its user's role

    with db.writing() as s:
        revoke_token(s, name="nightly")
    r = c.post("/api/taxonomy/changes", json={"op": "add", "name": "coat"}, headers=bearer)
    assert r.status_code == 401 and r.json()["detail"] == "unknown or revoked API token"
    assert _classes(TestClient(login_app, headers={"Authorization": f"Bearer {lou_token}"})) == ["shirt"]


def test_the_session_cookie_is_httponly_and_samesite_and_logout_ends_the_session(login_app, db):
    make_user(db, "ana", "labeller")
    c = TestClient(login_app)
    r = c.post("/login", data={"name": "ana", "password": PASSWORD}, follow_redirects=False)
    cookie = r.headers["set-cookie"]
    value = re.match(r"loupe_session=([^;]+);", cookie).group(1)
    attrs = {a.strip().split("=")[0].lower(): a.strip() for a in cookie.split(";")[1:]}
    assert "httponly" in attrs and attrs["samesite"].lower() == "samesite=lax" and attrs["path"] == "Path=/"
    assert "secure" not in attrs  # plain http on a LAN; over https it is Secure (below)
    with db.reading() as s:
        stored = s.scalars(select(UserSession.token_hash)).all()
    assert stored == [hashlib.sha256(value.encode()).hexdigest()]  # only a hash of the cookie is stored

    https = TestClient(login_app, base_url="https://testserver")
    r = https.post("/login", data={"name": "ana", "password": PASSWORD}, follow_redirects=False)
    assert "; secure" in r.headers["set-cookie"].lower()

    assert c.post("/logout", follow_redirects=False).status_code == 403  # logging out is CSRF'd too
    r = c.post("/logout", headers={"X-CSRF-Token": csrf_of(c)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    with db.reading() as s:
        assert s.scalar(select(func.count()).select_from(UserSession)) == 1  # only the https session is left
    replay = TestClient(login_app, cookies={"loupe_session": value})
    assert replay.get("/api/taxonomy").status_code == 401  # a copied cookie stops working too


def test_labels_are_signed_by_the_logged_in_user(login_app, db):
    admin = _signed_in(login_app, db, "root", "admin")
    lou = _signed_in(login_app, db, "lou", "labeller")
    add_class(admin, "shirt")
    ids = upload_fmnist(admin, 2)
    event = label(lou, ids[0], "shirt", annotator="mallory")
    assert event["annotator"] == "lou" and event["label"]["annotator"] == "lou"
    r = lou.post(f"/label/{ids[1]}", data={"class": "shirt", "annotator": "mallory"})
    assert r.status_code == 200, r.text
    assert lou.get(f"/api/images/{ids[1]}").json()["label"]["annotator"] == "lou"
    page = lou.get("/label", headers=HTML).text
    assert '<meta name="loupe-user" content="lou">' in page  # so the page skips its "who are you" dialog
    versions = admin.get("/api/taxonomy/versions").json()["items"]
    assert versions[-1]["author"] == "root"


def test_every_post_form_sends_the_csrf_token(login_app, db):
    admin = _signed_in(login_app, db, "root", "admin")
    token = admin.headers["X-CSRF-Token"]
    snap = _snapshot(admin, labeller=admin)
    ids = [item["image"] for item in admin.get(f"/api/snapshots/{snap['id']}/items").json()["items"]]
    job = admin.post("/api/jobs", json={"kind": "train", "snapshot": snap["id"], "config": {"epochs": 1}}).json()
    pages = ["/", "/label", "/browse", f"/images/{ids[0]}", "/taxonomy", "/snapshots", f"/snapshots/{snap['id']}",
             "/jobs", f"/jobs/{job['id']}", "/review", "/quality"]
    seen = 0
    for path in pages:
        html = admin.get(path, headers=HTML).text
        assert f'<meta name="csrf-token" content="{token}">' in html, path
        for form in re.findall(r"<form\b[^>]*>.*?</form>", html, flags=re.S | re.I):
            opening = form[: form.index(">")]
            if 'method="post"' not in opening.lower():
                continue
            seen += 1
            # htmx sends the header (app.js); a plain form needs the hidden field.
            assert "hx-post" in opening or f'name="csrf_token" value="{token}"' in form, (path, opening)
    assert seen >= 6


def _serve(tmp_path, *args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--no-worker", *args, "--data", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


def test_serve_beyond_loopback_refuses_to_start_without_an_admin(tmp_path, monkeypatch):
    r = _serve(tmp_path, "--host", "0.0.0.0")
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and "refusing to listen on 0.0.0.0 without logins" in last
    assert "loupe user add NAME --role admin" in last and "Ready" not in r.stdout

    # A labeller is not enough: somebody must be able to manage the taxonomy and users.
    from app.cli import main

    monkeypatch.setenv("LOUPE_DATA", str(tmp_path / "data"))
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "lou", "--role", "labeller", "--password-stdin", "--data", str(tmp_path / "data")]) == 0
    r = _serve(tmp_path, env={"LOUPE_LOGIN": "required"})
    assert r.returncode == 2 and "refusing to listen on 127.0.0.1 without logins" in r.stderr

    r = _serve(tmp_path, env={"LOUPE_TOKEN": "s3cret"})
    assert r.returncode == 2 and "LOUPE_TOKEN is no longer used" in r.stderr
