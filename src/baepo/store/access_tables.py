"""Rows of API tokens, audit records, dashboard users and their sessions.

Callers: the record classes of ``SqlStore``; ``store.tables`` for the schema as a whole.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from baepo.core import model
from baepo.store.tables import JSON_OBJECT, NAME, Base, as_utc


class TokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(NAME)
    role: Mapped[str] = mapped_column(sa.String(32))
    envs: Mapped[list[str]] = mapped_column(JSON_OBJECT)
    secret_hash: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(sa.String(256))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    @classmethod
    def from_record(cls, token: model.ApiToken) -> TokenRow:
        row = cls(id=token.id)
        row.assign(token)
        return row

    def assign(self, token: model.ApiToken) -> None:
        self.name = token.name
        self.role = token.role
        self.envs = list(token.envs)
        self.secret_hash = token.secret_hash
        self.created_at = as_utc(token.created_at, "created_at")
        self.created_by = token.created_by
        self.expires_at = (
            None if token.expires_at is None else as_utc(token.expires_at, "expires_at")
        )
        self.revoked_at = (
            None if token.revoked_at is None else as_utc(token.revoked_at, "revoked_at")
        )
        self.last_used_at = (
            None if token.last_used_at is None else as_utc(token.last_used_at, "last_used_at")
        )

    def to_record(self) -> model.ApiToken:
        return model.ApiToken(
            id=self.id,
            name=self.name,
            role=self.role,
            envs=list(self.envs),
            secret_hash=self.secret_hash,
            created_at=self.created_at,
            created_by=self.created_by,
            expires_at=self.expires_at,
            revoked_at=self.revoked_at,
            last_used_at=self.last_used_at,
        )


class AuditRow(Base):
    __tablename__ = "audit"
    __table_args__ = (
        sa.Index("ix_audit_app_env_id", "app", "env", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(sa.String(256))
    role: Mapped[str] = mapped_column(sa.String(32))
    action: Mapped[str] = mapped_column(sa.String(256))
    source: Mapped[str] = mapped_column(sa.String(256))
    status: Mapped[int]
    app: Mapped[str | None] = mapped_column(NAME)
    env: Mapped[str | None] = mapped_column(NAME)
    detail: Mapped[str] = mapped_column(sa.Text)

    @classmethod
    def from_record(cls, record: model.AuditRecord) -> AuditRow:
        return cls(
            at=as_utc(record.at, "at"),
            actor=record.actor,
            role=record.role,
            action=record.action,
            source=record.source,
            status=record.status,
            app=record.app,
            env=record.env,
            detail=record.detail,
        )

    def to_record(self) -> model.AuditRecord:
        return model.AuditRecord(
            id=self.id,
            at=self.at,
            actor=self.actor,
            role=self.role,
            action=self.action,
            source=self.source,
            status=self.status,
            app=self.app,
            env=self.env,
            detail=self.detail,
        )


class UserRow(Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(NAME, primary_key=True)
    password_hash: Mapped[str] = mapped_column(sa.String(512))
    role: Mapped[str] = mapped_column(sa.String(32))
    envs: Mapped[list[str]] = mapped_column(JSON_OBJECT)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(sa.String(256))
    disabled: Mapped[bool]

    @classmethod
    def from_record(cls, user: model.User) -> UserRow:
        row = cls(username=user.username)
        row.assign(user)
        return row

    def assign(self, user: model.User) -> None:
        self.password_hash = user.password_hash
        self.role = user.role
        self.envs = list(user.envs)
        self.created_at = as_utc(user.created_at, "created_at")
        self.created_by = user.created_by
        self.disabled = user.disabled

    def to_record(self) -> model.User:
        return model.User(
            username=self.username,
            password_hash=self.password_hash,
            role=self.role,
            envs=list(self.envs),
            created_at=self.created_at,
            created_by=self.created_by,
            disabled=self.disabled,
        )


class SessionRow(Base):
    __tablename__ = "web_sessions"
    __table_args__ = (sa.Index("ix_web_sessions_expires_at", "expires_at"),)

    id_hash: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    subject: Mapped[str] = mapped_column(NAME)
    csrf: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]

    @classmethod
    def from_record(cls, session: model.WebSession) -> SessionRow:
        return cls(
            id_hash=session.id_hash,
            kind=session.kind,
            subject=session.subject,
            csrf=session.csrf,
            created_at=as_utc(session.created_at, "created_at"),
            expires_at=as_utc(session.expires_at, "expires_at"),
        )

    def to_record(self) -> model.WebSession:
        return model.WebSession(
            id_hash=self.id_hash,
            kind=self.kind,
            subject=self.subject,
            csrf=self.csrf,
            created_at=self.created_at,
            expires_at=self.expires_at,
        )
