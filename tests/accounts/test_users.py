"""Users, passwords, sessions and the role policy, on the migrated temporary SQLite file."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.accounts import users
from app.accounts.sessions import find_session, start_session
from app.db.models import User, UserSession
from app.errors import Conflict, InvalidInput, NotFound
from app.web.auth import required_role


def test_passwords_are_stored_as_argon2id_hashes_and_a_new_one_ends_sessions(db):
    with db.writing() as s:
        user = users.add_user(s, name="ana", role="labeller", password="plain secret 1")
        raw = start_session(s, user_id=user.id, lifetime_s=60)
        s.commit()
    with db.reading() as s:
        stored = s.scalar(select(User.password_hash).where(User.name == "ana"))
        assert find_session(s, raw).name == "ana"
    assert stored.startswith("$argon2id$") and "plain secret 1" not in stored
    assert users.check_password(users.User(password_hash=stored), "plain secret 1")
    assert not users.check_password(users.User(password_hash=stored), "plain secret 2")
    assert not users.check_password(None, "plain secret 1")  # unknown user

    with db.writing() as s:
        users.set_password(s, name="ana", password="plain secret 2")
    with db.reading() as s:
        new = s.scalar(select(User.password_hash).where(User.name == "ana"))
        assert find_session(s, raw) is None and s.scalar(select(func.count()).select_from(UserSession)) == 0
    assert new != stored and users.check_password(users.User(password_hash=new), "plain secret 2")


def test_bad_names_roles_and_passwords_are_refused_and_nothing_is_written(db):
    with db.writing() as s:
        for name, role, password, error in [
            ("", "admin", "long enough", InvalidInput), ("a b", "admin", "long enough", InvalidInput),
            ("<script>", "admin", "long enough", InvalidInput), ("ana", "root", "long enough", InvalidInput),
            ("ana", "admin", "short", InvalidInput),
        ]:
            with pytest.raises(error):
                users.add_user(s, name=name, role=role, password=password)
        assert s.scalar(select(func.count()).select_from(User)) == 0
        users.add_user(s, name="ana", role="admin", password="long enough")
        with pytest.raises(Conflict):
            users.add_user(s, name="ana", role="labeller", password="long enough")
        with pytest.raises(NotFound):
            users.set_password(s, name="bob", password="long enough")


def test_the_last_admin_cannot_be_demoted_or_removed(db):
    with db.writing() as s:
        users.add_user(s, name="root", role="admin", password="long enough")
        users.add_user(s, name="lou", role="labeller", password="long enough")
        for act in (lambda: users.set_role(s, name="root", role="reviewer"), lambda: users.remove_user(s, name="root")):
            with pytest.raises(Conflict, match="last admin"):
                act()
        users.set_role(s, name="lou", role="admin")
        users.remove_user(s, name="root")
        assert [u.name for u in users.list_users(s)] == ["lou"] and users.has_admin(s)


def test_expired_sessions_log_nobody_in(db):
    with db.writing() as s:
        user = users.add_user(s, name="ana", role="labeller", password="long enough")
        raw = start_session(s, user_id=user.id, lifetime_s=-1)
        s.commit()
    with db.reading() as s:
        assert find_session(s, raw) is None and find_session(s, "") is None


@pytest.mark.parametrize("path, role", [
    ("/api/images/7/labels", "labeller"), ("/api/images/7/labels/undo", "labeller"), ("/label/7", "labeller"),
    ("/api/labels/bulk", "labeller"), ("/api/tags", "labeller"), ("/api/tags/dark/retire", "admin"),
    ("/api/flags/3/resolve", "reviewer"), ("/quality/actions/audits", "reviewer"), ("/api/images", "admin"),
    ("/api/taxonomy/changes", "admin"), ("/taxonomy/changes", "admin"), ("/taxonomy/tags", "labeller"),
    ("/api/jobs", "admin"), ("/api/jobs/3/cancel", "admin"), ("/snapshots", "admin"), ("/labels", "admin"),
    ("/api/similar", "labeller"), ("/api/something-new", "admin"),
])
def test_the_policy_names_the_least_role_for_each_change(path, role):
    assert required_role(path) == role
