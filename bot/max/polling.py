"""Long polling of MAX (`GET /updates` with `marker`) that confirms an update only once its
handling is acknowledged: bot/telegram/polling.py's design, with MAX's markers; the bookkeeping
(states, tasks, pauses, stop and drain) is bot/conversation/intake.py's, shared with it.

MAX keeps an update until a `GET /updates` passes a marker beyond it; the answer's `marker`
points past the updates it returned (docs/MAX.md). Updates carry no sequence number of their
own, so the loop remembers each answer's marker with the identities of its updates
(bot/max/updates.py), and asks with the latest marker all of whose updates are acknowledged
(bot/conversation/receipts.py: committed, handled before, or failed and recorded), else with the
marker it asked with before: MAX then returns the unconfirmed updates again, and those handled or in
progress are skipped (in memory here, by the record of handled updates after a restart).
An update of a killed or stopped process comes again after the restart. The marker is kept in
the database too (storage/poll_markers.py), written whenever it moves and read at start: a
restarted loop asks with it, since a poll without a marker may get only the latest update.

Updates are handled concurrently (one at a time per user: the runner's locks), at most
`concurrency` at once. While some are in progress the loop asks again every `refresh` seconds
without waiting (MAX allows 2 polls a second), so new updates do not wait behind a slow one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from bot.conversation.intake import Messenger, PollingLoop
from bot.conversation.receipts import Receipt
from bot.max.client import MaxClient, MaxError
from bot.max.feed import Attempts, Feed
from bot.max.updates import UPDATE_TYPES, JsonDict, update_identity
from services.clock import Clock, SystemClock
from storage.poll_markers import PollMarkers

log = logging.getLogger(__name__)

POLL_TIMEOUT_SECONDS = 30  # MAX's long poll (its documented maximum for polling since 05.2026)
REFRESH_SECONDS = 1.0  # how often to look for new updates while some are in progress


MAX = Messenger("MAX updates", "MAX", log)


def identity_of(update: JsonDict) -> str:
    """The update's identity; a malformed one (no identity) gets one from its contents. Never
    raises: an update that cannot be read must not stop the loop (it is ignored by the feed)."""
    identity = update_identity(update)
    if identity is not None:
        return identity
    try:
        contents = json.dumps(update, sort_keys=True, default=str)
    except Exception:  # keys of mixed types, a value whose str() fails
        contents = repr(update)
    return hashlib.sha256(contents.encode()).hexdigest()


@dataclass
class MaxPoller(PollingLoop[str]):
    """Polls MAX for `feed` until `stop()`; `run()` returns after the drain."""

    MESSENGER = MAX

    client: MaxClient
    feed: Feed
    timeout: int = field(default=POLL_TIMEOUT_SECONDS, kw_only=True)
    refresh: float = field(default=REFRESH_SECONDS, kw_only=True)
    # After so many failed handlings of one update, it is recorded as failed and passed.
    attempts: Attempts = field(default_factory=Attempts)
    # Where the confirmed marker is kept across restarts (None: in memory only). Read at start,
    # written whenever the marker moves (every update before it acknowledged).
    markers: PollMarkers | None = None
    clock: Clock = field(default_factory=SystemClock)
    stored: int | None = None  # the marker last read from or written to `markers`
    marker: int | None = None  # what the next poll confirms up to (None: nothing yet)
    # The marker of the latest poll MAX answered: what MAX is known to have confirmed. A poll
    # that failed or was cut short by a stop may not have reached MAX with its marker.
    received: int | None = None
    # The answers since `marker`: the marker each pointed to, and the updates it returned.
    _answers: list[tuple[int, list[str]]] = field(default_factory=list)

    async def run(self) -> None:
        intake = self._intake
        await self._load()
        try:
            while not intake.stopping:
                if not await intake.wait_turn(self.refresh):
                    break
                marker = self._advance()
                await self._store(marker)
                try:
                    answer = await self._get_updates(marker)
                except MaxError as error:
                    log.warning(
                        "GET /updates failed (%s); polling again in %.0f s",
                        error.status,
                        intake.poll_failed(),
                    )
                    continue
                if answer is None:
                    break  # stopped while waiting
                self.received = marker
                intake.poll_succeeded()
                updates, next_marker = answer
                identities = [identity_of(update) for update in updates]
                if next_marker is not None:
                    if self._answers and self._answers[-1][0] == next_marker:
                        self._answers.pop()  # the same updates again, maybe fewer
                    self._answers.append((next_marker, identities))
                for identity, update in zip(identities, updates, strict=True):
                    self._take(identity, update)
        finally:
            await intake.drain(self.drain)
            await self._confirm()
            await self._store(self.marker)

    # -- internals -----------------------------------------------------------------------------

    async def _load(self) -> None:
        """The marker the previous process confirmed, if kept and none is given."""
        if self.markers is None or self.marker is not None:
            return
        try:
            self.marker = self.stored = await self.markers.load()
        except SQLAlchemyError as error:  # polls without it: what comes again is skipped
            log.warning("MAX polling marker could not be read: %s", type(error).__name__)
        if self.marker is not None:
            log.info("MAX polling resumes at the stored marker %d", self.marker)

    async def _store(self, marker: int | None) -> None:
        """Keep `marker` (all of whose updates are acknowledged) for the next process."""
        if self.markers is None or marker is None or marker == self.stored:
            return
        try:
            await self.markers.save(marker, self.clock.now())
            self.stored = marker
        except SQLAlchemyError as error:  # kept in memory; written with the next move
            log.warning("MAX polling marker could not be stored: %s", type(error).__name__)

    def _advance(self) -> int | None:
        """The marker to ask with: that of the latest answer whose updates are all
        acknowledged, else the one asked with before. What it confirms is forgotten."""
        for position in range(len(self._answers) - 1, -1, -1):
            next_marker, identities = self._answers[position]
            if all(self._intake.acknowledged(i) for i in identities):
                confirmed = {i for _, ids in self._answers[: position + 1] for i in ids}
                later = {i for _, ids in self._answers[position + 1 :] for i in ids}
                for identity in confirmed - later:
                    self._intake.states.pop(identity, None)
                self._answers = self._answers[position + 1 :]
                self.marker = next_marker
                break
        return self.marker

    async def _get_updates(self, marker: int | None) -> tuple[list[JsonDict], int | None] | None:
        """One GET /updates, long if nothing is in progress; None if a stop cut it short (what
        the answer would have brought stays with MAX; whether MAX took the marker is not known,
        so the stop confirms it again)."""
        wait = 0 if self._intake.tasks else self.timeout
        return await self._intake.unless_stopped(
            self.client.updates(marker, wait=wait, types=UPDATE_TYPES)
        )

    def _take(self, identity: str, update: JsonDict) -> None:
        if self._intake.taken(identity):
            return  # in progress, or done but not yet confirmed to MAX
        self._intake.start(
            identity, lambda: self._handle(identity, update), name=f"max-update-{identity}"
        )

    async def _handle(self, identity: str, update: JsonDict) -> Receipt:
        return await self.attempts.handle(self.feed, identity, update)

    async def _confirm(self) -> None:
        """Tell MAX what is acknowledged and not yet known to be confirmed (the last poll may
        have failed or been cut short before MAX took its marker), so a restart does not get it
        again (it would be skipped all the same)."""
        marker = self._advance()
        if marker is None or marker == self.received:
            return
        try:
            await self.client.updates(marker, wait=0, limit=1, types=UPDATE_TYPES)
            self.received = marker
        except MaxError as error:  # the updates come again and are skipped
            log.info("could not confirm MAX updates on stop: %s", error.status)
