"""API tokens, the audit log, dashboard users and their sessions: the part of ``SqlStore``
that stores them.

Callers: ``store.repository`` (``SqlStore`` inherits it).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from baepo.core.model import ApiToken, AuditRecord, User, WebSession
from baepo.errors import NotFoundError, StateError
from baepo.store.access_tables import AuditRow, SessionRow, TokenRow, UserRow
from baepo.store.transactions import Transactions


class AccessRecords(Transactions):
    """API tokens, the audit log, dashboard users and their sessions."""

    # -- tokens and audit -------------------------------------------------------------------

    def add_token(self, token: ApiToken) -> ApiToken:
        """Insert a token; StateError when its id is taken."""
        with self._writing(f"add token {token.name!r}") as session:
            session.add(TokenRow.from_record(token))
            try:
                session.flush()
            except sa_exc.IntegrityError as exc:
                raise StateError(f"a token with id {token.id} already exists") from exc
            return token

    def get_token(self, token_id: str) -> ApiToken | None:
        with self._reading("read a token") as session:
            row = session.get(TokenRow, token_id)
            return None if row is None else row.to_record()

    def save_token(self, token: ApiToken) -> ApiToken:
        """Update a token (revocation, last use); NotFoundError when it does not exist."""
        with self._writing(f"save token {token.id}") as session:
            row = session.get(TokenRow, token.id)
            if row is None:
                raise NotFoundError(f"no token {token.id}", hint="list them with baepo token list")
            row.assign(token)
            return row.to_record()

    def list_tokens(self) -> list[ApiToken]:
        """Every token, revoked ones too, oldest first."""
        statement = sa.select(TokenRow).order_by(TokenRow.created_at, TokenRow.id)
        with self._reading("list tokens") as session:
            return [row.to_record() for row in session.scalars(statement)]

    def append_audit(self, record: AuditRecord) -> AuditRecord:
        """Append; returns the record with its ``id``."""
        with self._writing("append to the audit log") as session:
            row = AuditRow.from_record(record)
            session.add(row)
            session.flush()
            return row.to_record()

    def list_audit(
        self,
        *,
        after: int = 0,
        limit: int = 200,
        app: str | None = None,
        env: str | None = None,
    ) -> list[AuditRecord]:
        """Audit records with id > ``after`` (optionally of one app or environment), the
        oldest ``limit`` of them, oldest first."""
        statement = sa.select(AuditRow).where(AuditRow.id > after).order_by(AuditRow.id)
        if app is not None:
            statement = statement.where(AuditRow.app == app)
        if env is not None:
            statement = statement.where(AuditRow.env == env)
        with self._reading("list the audit log") as session:
            return [row.to_record() for row in session.scalars(statement.limit(max(limit, 0)))]

    # -- dashboard users and sessions -------------------------------------------------------

    def add_user(self, user: User) -> User:
        """Insert a user; StateError when the username is taken."""
        with self._writing(f"add user {user.username!r}") as session:
            session.add(UserRow.from_record(user))
            try:
                session.flush()
            except sa_exc.IntegrityError as exc:
                raise StateError(f"a user named {user.username} already exists") from exc
            return user

    def get_user(self, username: str) -> User | None:
        with self._reading("read a user") as session:
            row = session.get(UserRow, username)
            return None if row is None else row.to_record()

    def save_user(self, user: User) -> User:
        """Update a user (password, role, disabled); NotFoundError when it does not exist."""
        with self._writing(f"save user {user.username!r}") as session:
            row = session.get(UserRow, user.username)
            if row is None:
                raise NotFoundError(f"no user {user.username}")
            row.assign(user)
            return row.to_record()

    def list_users(self) -> list[User]:
        """Every user, disabled ones too, by username."""
        with self._reading("list users") as session:
            rows = session.scalars(sa.select(UserRow).order_by(UserRow.username))
            return [row.to_record() for row in rows]

    def add_session(self, web_session: WebSession) -> WebSession:
        """Insert a dashboard session; also deletes every expired one."""
        with self._writing("add a dashboard session") as session:
            expired = SessionRow.expires_at <= web_session.created_at
            session.execute(sa.delete(SessionRow).where(expired))
            session.add(SessionRow.from_record(web_session))
            return web_session

    def get_session(self, id_hash: str) -> WebSession | None:
        """The session with this id hash, expired or not (the caller checks)."""
        with self._reading("read a dashboard session") as session:
            row = session.get(SessionRow, id_hash)
            return None if row is None else row.to_record()

    def delete_session(self, id_hash: str) -> bool:
        """Forget a session (logout); whether it was there."""
        with self._writing("delete a dashboard session") as session:
            done = session.execute(sa.delete(SessionRow).where(SessionRow.id_hash == id_hash))
            return bool(getattr(done, "rowcount", 0))
