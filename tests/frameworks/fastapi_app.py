"""A FastAPI app: an AsyncSession per request from a dependency, the engine made and disposed of by the
lifespan, and a sign-up that writes its row and enqueues its welcome email with AsyncQueue in one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pgq_testjobs as tj
from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from pgqueue import AsyncQueue

emails = AsyncQueue("emails")


class SignupIn(BaseModel):
    email: str


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session per request, from the lifespan's sessionmaker."""
    async with request.app.state.sessions() as s:
        yield s


def create_app(database_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_async_engine(database_url)  # postgresql+psycopg://...
        app.state.sessions = async_sessionmaker(engine, expire_on_commit=False)
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/signups", status_code=201)
    async def signup(body: SignupIn, db: Annotated[AsyncSession, Depends(session)]) -> dict[str, Any]:
        async with db.begin():  # commits at the end of the block; an exception rolls back the row and the job
            user_id = (await db.execute(text("INSERT INTO fastapi_signups (email) VALUES (:e) RETURNING id"),
                                        {"e": body.email})).scalar_one()
            job = await emails.enqueue(tj.record, f"welcome {user_id}", connection=db)
            if body.email.endswith("@invalid"):
                raise HTTPException(422, f"cannot send to {body.email}")
            if body.email.endswith("@crash"):
                raise RuntimeError("the mail service is down")
        return {"id": user_id, "job": job.id}

    return app
