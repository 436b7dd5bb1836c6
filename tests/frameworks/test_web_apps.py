"""The Flask (Flask-SQLAlchemy's db.session) and FastAPI (AsyncSession dependency, lifespan, AsyncQueue) recipes
of docs/frameworks.md as real apps on the test database: an endpoint writes a row and enqueues a job in one
transaction; commit -> both, and a real worker runs the job; an exception -> neither, and no wake-up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from conftest import wait_for

from pgqueue import ConfigurationError, Job, JobStatus

pytest.importorskip("flask_sqlalchemy")
pytest.importorskip("fastapi")


def sa_url(dsn: str, driver: str = "psycopg") -> str:
    """The test database as a SQLAlchemy URL (a Unix socket directory, as the embedded server's, goes in the
    query string)."""
    from sqlalchemy.engine import URL

    params = psycopg.conninfo.conninfo_to_dict(dsn)
    host = params.get("host")
    socket = bool(host) and str(host).startswith("/")
    url = URL.create(f"postgresql+{driver}", username=params.get("user"), password=params.get("password"),
                     host=None if socket else host, port=int(params["port"]) if params.get("port") else None,
                     database=params["dbname"], query={"host": str(host)} if socket else {})
    return url.render_as_string(hide_password=False)


def runs(db: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in db.execute("SELECT tag FROM pgq_test.runs ORDER BY at").fetchall()]


def jobs_of(db: psycopg.Connection[Any], queue: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in db.execute("SELECT id, status::text FROM pgqueue.jobs WHERE queue = %s ORDER BY id",
                                              (queue,)).fetchall()]


@pytest.fixture
def table(db: psycopg.Connection[Any]) -> Callable[[str], None]:
    def make(name: str) -> None:
        db.execute(f"DROP TABLE IF EXISTS {name}")
        db.execute(f"CREATE TABLE {name} (id serial PRIMARY KEY, email text NOT NULL)")
    return make


# -- Flask --------------------------------------------------------------------------------------------------
@pytest.fixture
def flask_app(dsn: str, table: Callable[[str], None]) -> Iterator[Any]:
    from .flask_app import create_app, db

    table("flask_signups")
    app = create_app(sa_url(dsn))
    yield app
    with app.app_context():
        db.engine.dispose()


def test_flask_commit_keeps_row_and_job_and_a_worker_runs_it(flask_app: Any, db: psycopg.Connection[Any],
                                                              spawn_worker: Any) -> None:
    worker = spawn_worker("emails", "--poll-interval", "60")  # a run within the deadline below: a wake-up
    response = flask_app.test_client().post("/signups", json={"email": "ada@example.com"})
    assert response.status_code == 201, response.text
    body = response.get_json()
    assert db.execute("SELECT id, email FROM flask_signups").fetchall() == [(body["id"], "ada@example.com")]
    wait_for(lambda: Job.fetch(body["job"]).status == JobStatus.FINISHED, timeout=15, message="the job to run")
    assert runs(db) == [f"welcome {body['id']}"]
    assert f"Job OK ({body['job']})" in worker.output


def test_flask_exception_rolls_back_row_and_job(flask_app: Any, db: psycopg.Connection[Any],
                                                wakeups: Callable[[], list[str]]) -> None:
    response = flask_app.test_client().post("/signups", json={"email": "bob@invalid"})
    assert response.status_code == 500
    assert db.execute("SELECT count(*) FROM flask_signups").fetchone() == (0,)
    assert jobs_of(db, "emails") == []
    assert wakeups() == []


def test_flask_sqlalchemy_on_psycopg2_is_refused_naming_the_url_to_use(dsn: str, table: Callable[[str], None],
                                                                        db: psycopg.Connection[Any]) -> None:
    pytest.importorskip("psycopg2")
    from .flask_app import create_app

    table("flask_signups")
    app = create_app(sa_url(dsn, "psycopg2"))  # what SQLAlchemy before 2.1 makes of a plain postgresql://
    app.testing = True  # the view's exception reaches the test
    with pytest.raises(ConfigurationError, match=r"not psycopg2: start the engine's URL with postgresql\+psycopg://"):
        app.test_client().post("/signups", json={"email": "ada@example.com"})
    assert db.execute("SELECT count(*) FROM flask_signups").fetchone() == (0,)  # rolled back at teardown
    assert jobs_of(db, "emails") == []


# -- FastAPI ------------------------------------------------------------------------------------------------
@pytest.fixture
def fastapi_client(dsn: str, table: Callable[[str], None]) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from .fastapi_app import create_app

    table("fastapi_signups")
    with TestClient(create_app(sa_url(dsn)), raise_server_exceptions=False) as client:  # runs the lifespan
        yield client


def test_fastapi_commit_keeps_row_and_job_and_a_worker_runs_it(fastapi_client: Any, db: psycopg.Connection[Any],
                                                                spawn_worker: Any) -> None:
    worker = spawn_worker("emails", "--poll-interval", "60")
    response = fastapi_client.post("/signups", json={"email": "ada@example.com"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert db.execute("SELECT id, email FROM fastapi_signups").fetchall() == [(body["id"], "ada@example.com")]
    wait_for(lambda: Job.fetch(body["job"]).status == JobStatus.FINISHED, timeout=15, message="the job to run")
    assert runs(db) == [f"welcome {body['id']}"]
    assert f"Job OK ({body['job']})" in worker.output


@pytest.mark.parametrize(("email", "status"), [("bob@invalid", 422), ("eve@crash", 500)])
def test_fastapi_exception_rolls_back_row_and_job(email: str, status: int, fastapi_client: Any,
                                                  db: psycopg.Connection[Any],
                                                  wakeups: Callable[[], list[str]]) -> None:
    response = fastapi_client.post("/signups", json={"email": email})
    assert response.status_code == status
    assert db.execute("SELECT count(*) FROM fastapi_signups").fetchone() == (0,)
    assert jobs_of(db, "emails") == []
    assert wakeups() == []
    ok = fastapi_client.post("/signups", json={"email": "ada@example.com"})  # the app serves on
    assert ok.status_code == 201 and [id for id, _ in jobs_of(db, "emails")] == [ok.json()["job"]]
