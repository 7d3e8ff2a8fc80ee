"""The server's notifier: follows the event history of every app and notifies its channels.

It polls the store for events newer than the last one it saw (starting from the newest event
when the server starts, so a restart does not send the history again), maps each to a
notification event, finds the channels of the spec that applies (the revision the event
belongs to, else the app's stable revision), renders the message and hands it to the
channel's worker. It never writes to the store and never waits for a channel: the controller
is not slowed down by a slow or failing channel.

Callers: ``api.server`` builds it; the API's lifespan starts and stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import TypeAdapter, ValidationError

from baepo.core.model import Cause, Event, Revision
from baepo.core.ports import Store
from baepo.errors import BaepoError
from baepo.notify import messages, sending
from baepo.notify.channel import ChannelWorker, Delivery, Retry, Sender
from baepo.notify.redaction import Redactor
from baepo.spec.notifications import Channels, ChannelSpec, NotifyEvent

log = logging.getLogger("baepo.notify")

_CHANNELS: TypeAdapter[list[ChannelSpec]] = TypeAdapter(Channels)
_PAGE = 200
CAUSED = frozenset({NotifyEvent.FAILED, NotifyEvent.ROLLED_BACK, NotifyEvent.ABORTED})


class Notifier:
    """Notifies the ``notifications:`` channels of every app about its releases.

    ``server_url`` is the server's base URL, for the dashboard links in messages; it may be
    set after construction, before :meth:`start`.
    """

    def __init__(
        self,
        store: Store,
        server_url: str = "",
        *,
        interval: float = 0.5,
        retry: Retry | None = None,
        queue_size: int = 100,
        threads: int = 4,
        environ: Mapping[str, str] | None = None,
        send: Sender = sending.send,
    ) -> None:
        self.store = store
        self.server_url = server_url
        self.interval = interval
        self.retry = retry or Retry()
        self.queue_size = queue_size
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self._send = send
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._redactor = Redactor()
        self._workers: dict[tuple[str, str, str], ChannelWorker] = {}
        self._tasks: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._start_after: int | None = None
        self._cursors: dict[tuple[str, str], int] = {}
        self._channels: dict[tuple[str, str, int], tuple[Revision, list[ChannelSpec]]] = {}

    # -- life --------------------------------------------------------------------------

    def start(self) -> None:
        """Start following events from the newest one now in the store."""
        self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="baepo-notify")
        logging.getLogger("apprise").addFilter(self._redactor)
        try:
            self._start_after = self._newest_event_id()
        except BaepoError as exc:
            log.warning("notifications: cannot read the event history yet (%s)", exc)
        self._task = asyncio.create_task(self._run(), name="baepo-notifier")

    async def stop(self, *, drain: float = 3.0) -> None:
        """Stop following events; give queued messages up to ``drain`` seconds to go out."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain
        while loop.time() < deadline and not all(w.idle for w in self._workers.values()):
            await asyncio.sleep(0.05)
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        self._workers.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        logging.getLogger("apprise").removeFilter(self._redactor)

    async def _run(self) -> None:
        while True:
            try:
                deliveries = await asyncio.to_thread(self.collect)
            except BaepoError as exc:
                log.warning("notifications: reading new events failed (%s); trying again", exc)
                deliveries = []
            for delivery in deliveries:
                self._worker(delivery).offer(delivery)
            await asyncio.sleep(self.interval)

    def _worker(self, delivery: Delivery) -> ChannelWorker:
        key = (delivery.app, delivery.env, delivery.channel.name)
        worker = self._workers.get(key)
        if worker is None:
            assert self._executor is not None, "start() first"
            worker = ChannelWorker(
                f"{delivery.channel.name} ({delivery.app} in {delivery.env})",
                self._send,
                self._executor,
                self._redactor,
                self.environ,
                retry=self.retry,
                queue_size=self.queue_size,
            )
            self._workers[key] = worker
            self._tasks[key] = asyncio.create_task(worker.run(), name=f"baepo-notify-{key}")
        return worker

    # -- reading the store (in a worker thread) ----------------------------------------

    def _newest_event_id(self) -> int:
        newest = 0
        for app in self.store.list_apps():
            recent = self.store.recent_events(app.app, app.env, limit=1)
            if recent and recent[-1].id is not None:
                newest = max(newest, recent[-1].id)
        return newest

    def collect(self) -> list[Delivery]:
        """The deliveries for events appended since the last call, oldest first. Blocking."""
        if self._start_after is None:
            self._start_after = self._newest_event_id()
            return []
        deliveries: list[Delivery] = []
        for app in self.store.list_apps():
            key = (app.app, app.env)
            after = self._cursors.get(key, self._start_after)
            events = self.store.list_events(app.app, app.env, after=after, limit=_PAGE)
            for event in events:
                assert event.id is not None
                self._cursors[key] = max(self._cursors.get(key, 0), event.id)
                deliveries.extend(self._deliveries(event))
        return deliveries

    def _deliveries(self, event: Event) -> list[Delivery]:
        kind = messages.notify_event(event)
        if kind is None:
            return []
        found = self._spec_channels(event)
        if found is None:
            return []
        revision, channels = found
        wanted = [c for c in channels if messages.wanted(c, kind)]
        if not wanted:
            return []
        fields = messages.message_fields(
            event, kind, revision.version, self.server_url, self._cause(event, kind)
        )
        return [
            Delivery(event.app, event.env, c, messages.compose(c, kind, fields)) for c in wanted
        ]

    def _cause(self, event: Event, kind: NotifyEvent) -> Cause | None:
        """The cause of the rollout a failed, rolled back or aborted event is about."""
        if kind not in CAUSED or event.rollout_id is None:
            return None
        try:
            return self.store.get_rollout(event.rollout_id).cause
        except BaepoError as exc:
            log.warning("notifications: rollout %s of %s: %s", event.rollout_id, event.app, exc)
            return None

    def _spec_channels(self, event: Event) -> tuple[Revision, list[ChannelSpec]] | None:
        """The revision whose spec applies to ``event`` and its channels, or None."""
        number = event.revision
        if number is None:
            app = self.store.get_app(event.app, event.env)
            number = app.stable_revision if app is not None else None
        if number is None:
            return None
        key = (event.app, event.env, number)
        if key not in self._channels:
            try:
                revision = self.store.get_revision(event.app, event.env, number)
            except BaepoError as exc:
                log.warning("notifications: revision %s of %s: %s", number, event.app, exc)
                return None
            self._channels[key] = (revision, _parse(revision))
        return self._channels[key]


def _parse(revision: Revision) -> list[ChannelSpec]:
    raw: Any = revision.config.get("notifications") or []
    try:
        return _CHANNELS.validate_python(raw)
    except ValidationError as exc:
        log.warning(
            "notifications: revision %s of %s has unusable channels (%d problems); "
            "it notifies no one",
            revision.number,
            revision.app,
            exc.error_count(),
        )
        return []
