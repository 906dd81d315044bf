"""`core.db.drop_database`: an autovacuum worker that a non-superuser may not end delays the drop
(tried again); any other refusal is raised at once."""

import pytest
from sqlalchemy.exc import ProgrammingError

from core import db

pytestmark = pytest.mark.unit

_AUTOVACUUM = "must be a member of the role whose process is being terminated or member of pg_signal_backend"


class _Conn:
    def __init__(self, failures: list[str]):
        self.failures, self.statements = failures, []

    def execute(self, statement):
        self.statements.append(str(statement))
        if self.failures:
            raise ProgrammingError("DROP DATABASE", {}, Exception(self.failures.pop(0)))


def test_an_autovacuum_worker_delays_the_drop(monkeypatch):
    monkeypatch.setattr(db.time, "sleep", lambda _: None)
    conn = _Conn([_AUTOVACUUM, _AUTOVACUUM])
    db.drop_database(conn, "t1")
    assert conn.statements == ['DROP DATABASE IF EXISTS "t1" WITH (FORCE)'] * 3


def test_another_refusal_or_the_last_attempt_raises(monkeypatch):
    monkeypatch.setattr(db.time, "sleep", lambda _: None)
    with pytest.raises(ProgrammingError, match="permission denied"):
        db.drop_database(_Conn(["permission denied to drop database"]), "t2")
    conn = _Conn([_AUTOVACUUM] * 5)
    with pytest.raises(ProgrammingError, match="pg_signal_backend"):
        db.drop_database(conn, "t3", attempts=3)
    assert len(conn.statements) == 3
