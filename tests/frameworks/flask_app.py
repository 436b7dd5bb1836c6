"""A Flask app with Flask-SQLAlchemy: a sign-up writes its row and enqueues its welcome email in one transaction,
passing ``db.session`` as ``connection=``."""

from __future__ import annotations

from typing import Any

import pgq_testjobs as tj
from flask import Flask, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pgqueue import Queue


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Signup(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "flask_signups"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str]


emails = Queue("emails")


def create_app(database_url: str) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    @app.post("/signups")
    def signup() -> tuple[dict[str, Any], int]:
        email = request.get_json()["email"]
        user = Signup(email=email)
        db.session.add(user)
        db.session.flush()  # the row's id, in the session's transaction
        job = emails.enqueue(tj.record, f"welcome {user.id}", connection=db.session)
        if email.endswith("@invalid"):
            raise ValueError(f"cannot send to {email}")  # after both writes: Flask-SQLAlchemy rolls back
        db.session.commit()  # the row and the job, together
        return {"id": user.id, "job": job.id}, 201

    return app
