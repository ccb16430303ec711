"""Surviving a database server's outage: RetryingStorage retries the calls that lost their
connection, and tells a server that is gone for good (StorageLost) or full (ServerFull)."""

import contextlib
import copy
import datetime
import random
import sqlite3
import threading
import time
import uuid

import optuna
import sqlalchemy

# Private Optuna names, each for a public API Optuna lacks (the floor-version CI job runs the tests
# against the oldest Optuna allowed, so a rename fails there first):
# - _CachedStorage (exported, underscored): the cache optuna.get_storage puts around an RDBStorage
#   given by URL; no public way to wrap one built here (optuna.storages.get_storage is documented
#   "only for internal usage").
from optuna.storages import BaseStorage, RDBStorage, _CachedStorage

# - BaseHeartbeat: Optuna runs heartbeats only for storages that subclass it; not exported.
from optuna.storages._heartbeat import BaseHeartbeat

# - models, _create_scoped_session: several trial attributes in one transaction (RDBStorage's public
#   setters commit one attribute each); no public batch write.
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState

from cmi_model.stopping import raise_if_stopped_waiting
from study import records
from study.workers import postgres
from study.workers.causes import causes
from study.workers.urls import redact, safe_url

# A PostgreSQL restart, a failover or a network blip takes seconds to a minute; a server down
# for longer needs a person, and a worker waiting on it would only hide that. So a storage call
# retries a lost connection for RETRY_PATIENCE seconds in all, backing off exponentially from
# RETRY_FIRST_DELAY to RETRY_MAX_DELAY: a server that is back is noticed within a few seconds,
# and a down one is asked about a dozen times a minute per worker, not hammered.
RETRY_PATIENCE = 60.0
RETRY_FIRST_DELAY = 0.25
RETRY_MAX_DELAY = 4.0
# The system attribute that lets a retried create_new_trial find the trial an attempt whose
# answer was lost did create (see RetryingStorage.create_new_trial).
CREATE_TOKEN = "cmi_create_token"
# SQLSTATEs of a server that is going away or not there yet: class 08 (connection exception),
# admin_shutdown (pg_ctl stop -m fast), crash_shutdown, cannot_connect_now (starting up or
# shutting down). Never integrity, data or syntax errors: bad input fails at once.
_CONNECTION_SQLSTATES = ("57P01", "57P02", "57P03")


class StorageLost(BaseException):
    """The storage stopped answering for RETRY_PATIENCE seconds: the worker stops (one line,
    exit 1). Not an Exception, like KeyboardInterrupt: Optuna's `catch` and our `except
    Exception` must not record it on the trial (nothing can be written) and go on to the next
    trial; the trial in flight stays RUNNING and is failed and re-queued by heartbeats."""

    def __init__(self, url: str, seconds: float, reason: str):
        super().__init__(f"the storage {url} stopped answering for {seconds:.0f} s: {reason}")


class ServerFull(StorageLost):
    """The server refused a connection because it has none left (study.workers.postgres). Not retried:
    waiting would only hold the workers that did connect, and only fewer workers or a larger
    limit help. Stops the worker like StorageLost (one line, exit 1)."""

    def __init__(self, url: str, said: str):
        BaseException.__init__(self, postgres.full_line(url, said))


class StorageBroken(BaseException):
    """A storage call failed for good inside a trial — a full disk, a read-only or deleted database,
    a file locked past SQLite's timeout — so nothing about the trial can be written either: the
    worker stops with one line. Not an Exception, for StorageLost's reasons (no `except Exception`
    may record it on the trial and go on to the next); the trial stays RUNNING for the heartbeats."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def broken(e: BaseException) -> StorageBroken | None:
    """StorageBroken for a database error (or Optuna's StorageInternalError around one) that is not
    a lost connection (those are retried, then StorageLost); None for anything else."""
    if connection_lost(e):
        return None
    if any(
        isinstance(c, (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError))
        for c in causes(e)
    ):
        return StorageBroken(reason_of(e))
    return None


def or_broken(fn, *args, **kwargs):
    """fn(*args, **kwargs), a storage failure in it raised as StorageBroken (see broken)."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        if (stop := broken(e)) is not None:
            raise stop from None
        raise


def connection_lost(e: BaseException) -> bool:
    """Whether e (or what caused it: RDBStorage wraps SQLAlchemy's errors in
    StorageInternalError) is a lost or refused connection to the database server."""
    for cause in causes(e):
        if isinstance(cause, sqlalchemy.exc.DisconnectionError):
            return True
        if isinstance(cause, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
            if cause.connection_invalidated:  # the dialect recognised a disconnect
                return True
            if hasattr(cause.orig, "pgcode"):  # psycopg2
                code = cause.orig.pgcode
                # No SQLSTATE: libpq's own error, no server answered (refused, reset, timed out).
                return code is None or code.startswith("08") or code in _CONNECTION_SQLSTATES
            return False
    return False


# What SQLite says when the file it has open was replaced (SQLITE_READONLY_DBMOVED: "attempt to
# write a readonly database", which blames permissions), said as study.workers.storage says it.
REPLACED = "the file was deleted or replaced while in use; nothing more can be written to it"


def reason_of(e: BaseException) -> str:
    """The storage error's cause in one line (the driver's words under SQLAlchemy's and Optuna's
    wrappers), password masked."""
    while getattr(e, "__cause__", None) is not None and not isinstance(e, sqlalchemy.exc.DBAPIError):
        e = e.__cause__
    if getattr(getattr(e, "orig", None), "sqlite_errorcode", None) == sqlite3.SQLITE_READONLY_DBMOVED:
        return REPLACED
    text = str(getattr(e, "orig", None) or e).strip()
    return redact(text.splitlines()[0][:200] if text else type(e).__name__)


def _with_token(template: FrozenTrial | None, token: str) -> FrozenTrial:
    """The trial to create, marked with token (a plain ask creates the same RUNNING trial)."""
    if template is None:
        template = FrozenTrial(
            number=-1,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=datetime.datetime.now(),
            datetime_complete=None,
            params={},
            distributions={},
            user_attrs={},
            system_attrs={},
            intermediate_values={},
            trial_id=-1,
        )
    else:
        template = copy.deepcopy(template)
    template.system_attrs = {**template.system_attrs, CREATE_TOKEN: token}
    return template


class RetryingStorage(BaseStorage, BaseHeartbeat):
    """An RDBStorage (behind Optuna's usual cache) whose every call survives a server outage of
    up to RETRY_PATIENCE seconds: a call that loses its connection is retried with exponential
    backoff; pool_pre_ping (open_storage) replaces the pooled connections the server dropped.
    Only connection-level errors are retried (connection_lost); the rest raise at once.

    After RETRY_PATIENCE without an answer the storage is lost for this process: the call, any
    call waiting in another thread (the heartbeat) and every later call raise StorageLost at
    once, so the worker stops within a second instead of waiting once more per call.

    A BaseHeartbeat, like RDBStorage: Optuna only runs heartbeats for such storages.

    Retried writes are idempotent (attributes, params, intermediate values and heartbeats are
    upserts; a repeated param insert is an ignored IntegrityError) except two, handled below:
    create_new_trial and set_trial_state_values, whose first attempt may have committed before
    the connection went (the answer was lost). create_new_study after a lost answer raises
    DuplicatedStudyError: the worker then joins the study as if another had made it, and writes
    its record when no creator's record appears (arm_studies._creators_record), so nothing is lost.
    """

    def __init__(self, backend: RDBStorage):
        self._rdb = backend
        self._backend = _CachedStorage(backend)  # what optuna.get_storage would make of it
        self.url = backend.url  # for the report's storage line (masked there)
        self._lost = threading.Event()  # set once the storage is given up: wakes waiting retries
        self._lost_error: StorageLost | None = None
        self._gathered = threading.local()  # this thread's user attributes held for one_transaction

    def _call(self, fn, *args, **kwargs):
        """fn(*args, **kwargs), retried while the server is unreachable, at most RETRY_PATIENCE."""
        started, delay = None, RETRY_FIRST_DELAY
        while True:
            if self._lost_error is not None:
                raise self._lost_error
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                if (said := postgres.server_full(e)) is not None:
                    raise ServerFull(safe_url(self.url), said) from None
                if not connection_lost(e):
                    raise
                raise_if_stopped_waiting()  # stopping: the server is waited for STOP_PATIENCE at most
                now = time.monotonic()
                started = now if started is None else started
                waited = now - started
                if waited >= RETRY_PATIENCE:
                    if self._lost_error is None:
                        self._lost_error = StorageLost(safe_url(self.url), RETRY_PATIENCE, reason_of(e))
                        self._lost.set()
                    raise self._lost_error from None
                # Jitter: workers that lost the server together do not come back in lockstep.
                pause = min(delay, RETRY_PATIENCE - waited) * random.uniform(0.5, 1.0)
                self._lost.wait(pause)
                delay = min(2 * delay, RETRY_MAX_DELAY)

    # ------------------------------------------------------------------ the two non-idempotent calls

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        """The trial is created with a token of its own: a retry first looks for a trial with
        that token (made by an attempt whose answer was lost), and any second one (RDBStorage
        itself retries a failed create up to five times) is failed as a duplicate at once,
        never left RUNNING without a heartbeat (never found stale: it would hold the budget)
        or WAITING (its parameters would be trained twice)."""
        token = uuid.uuid4().hex
        template = _with_token(template_trial, token)
        attempted = False

        def attempt() -> int:
            nonlocal attempted
            if attempted:
                mine = self._with_token(study_id, token)
                if mine:
                    return mine[0]._trial_id
            attempted = True
            return self._backend.create_new_trial(study_id, template)

        trial_id = self._call(attempt)
        for dup in self._call(self._with_token, study_id, token):
            if dup._trial_id != trial_id and not dup.state.is_finished():
                self._call(self._fail_duplicate, dup._trial_id, trial_id)
        return trial_id

    def _with_token(self, study_id: int, token: str) -> list[FrozenTrial]:
        trials = self._backend.get_all_trials(study_id, deepcopy=False)
        return sorted(
            (t for t in trials if t.system_attrs.get(CREATE_TOKEN) == token), key=lambda t: t.number
        )

    def _fail_duplicate(self, trial_id: int, kept: int) -> None:
        # A budget skip: a designed step-aside, not a failure of the arm.
        reason = f"{records.BUDGET_TAKEN}: duplicate of trial id {kept}, made by a retried storage call"
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            for key, value in records.trial_attrs(fail_reason=reason).items():
                self._backend.set_trial_user_attr(trial_id, key, value)
            self._backend.set_trial_state_values(trial_id, TrialState.FAIL)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values=None) -> bool:
        """A retry first reads the trial: if an attempt whose answer was lost already finished it
        as asked, that was this call (True), not a finished trial to refuse. A trial taken from
        the queue (WAITING → RUNNING) that is RUNNING on the retry may be ours or another
        worker's: False (Optuna takes another), and one heartbeat for it, so that if it was ours
        it is found stale after the grace period, failed and re-queued like a dead worker's.

        Ambiguous only if another worker failed the same stale trial at the same moment: then
        both re-queue it (a duplicate WAITING trial); budget_counts still counts exactly."""
        attempted = False

        def attempt() -> bool:
            nonlocal attempted
            if attempted:
                now = self._backend.get_trial(trial_id)
                same = values is None or list(now.values or ()) == list(values)
                if state.is_finished() and now.state == state and same:
                    return True
                if state == TrialState.RUNNING and now.state == TrialState.RUNNING:
                    if self.get_heartbeat_interval() is not None:
                        self._backend.record_heartbeat(trial_id)
                    return False
            attempted = True
            return self._backend.set_trial_state_values(trial_id, state=state, values=values)

        return self._call(attempt)

    # ------------------------------------------------------------------ a record in one transaction

    @contextlib.contextmanager
    def one_transaction(self):
        """Inside, this thread's set_trial_user_attr calls are gathered and written on leaving,
        in one transaction: a fold's record (~20 attributes) is one commit, not ~20, which was
        the largest share of a worker's storage time, and it is never half-written. If the body
        raises, nothing gathered is written. The heartbeat thread's calls go through as usual."""
        if getattr(self._gathered, "attrs", None) is not None:  # nested: the outer one writes
            yield
            return
        self._gathered.attrs = {}
        try:
            yield
            gathered = self._gathered.attrs
        finally:
            self._gathered.attrs = None
        if gathered:
            self._call(self._write_user_attrs, gathered)

    def _write_user_attrs(self, gathered: dict) -> None:
        # RDBStorage.set_trial_user_attr's own steps, in one session (it opens one per attribute).
        # Private names of Optuna's: the floor-version CI imports and runs them at both ends.
        with _create_scoped_session(self._rdb.scoped_session, True) as session:
            for (trial_id, key), value in gathered.items():
                self._rdb._set_trial_attr_without_commit(
                    session, models.TrialUserAttributeModel, trial_id, key, value
                )

    # ------------------------------------------------------------------ heartbeats

    def record_heartbeat(self, trial_id: int) -> None:
        """Called by Optuna's heartbeat thread: a StorageLost there would only print a thread's
        traceback. The worker's own next call raises it."""
        with contextlib.suppress(StorageLost):
            self._call(self._backend.record_heartbeat, trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return self._call(self._backend._get_stale_trial_ids, study_id)

    def get_heartbeat_interval(self) -> int | None:
        return self._rdb.get_heartbeat_interval()

    def get_heartbeat_stale_trial_callback(self):
        return self._rdb.get_heartbeat_stale_trial_callback()

    # ------------------------------------------------------------------ the rest: retried as they are

    def create_new_study(self, directions, study_name=None) -> int:
        return self._call(self._backend.create_new_study, directions, study_name)

    def delete_study(self, study_id):
        return self._call(self._backend.delete_study, study_id)

    def set_study_user_attr(self, study_id, key, value):
        return self._call(self._backend.set_study_user_attr, study_id, key, value)

    def set_study_system_attr(self, study_id, key, value):
        return self._call(self._backend.set_study_system_attr, study_id, key, value)

    def get_study_id_from_name(self, study_name):
        return self._call(self._backend.get_study_id_from_name, study_name)

    def get_study_name_from_id(self, study_id):
        return self._call(self._backend.get_study_name_from_id, study_id)

    def get_study_directions(self, study_id):
        return self._call(self._backend.get_study_directions, study_id)

    def get_study_user_attrs(self, study_id):
        return self._call(self._backend.get_study_user_attrs, study_id)

    def get_study_system_attrs(self, study_id):
        return self._call(self._backend.get_study_system_attrs, study_id)

    def get_all_studies(self):
        return self._call(self._backend.get_all_studies)

    def set_trial_param(self, trial_id, param_name, param_value_internal, distribution):
        return self._call(
            self._backend.set_trial_param, trial_id, param_name, param_value_internal, distribution
        )

    def get_trial_id_from_study_id_trial_number(self, study_id, trial_number):
        return self._call(self._backend.get_trial_id_from_study_id_trial_number, study_id, trial_number)

    def get_trial_number_from_id(self, trial_id):
        return self._call(self._backend.get_trial_number_from_id, trial_id)

    def get_trial_param(self, trial_id, param_name):
        return self._call(self._backend.get_trial_param, trial_id, param_name)

    def set_trial_intermediate_value(self, trial_id, step, intermediate_value):
        return self._call(self._backend.set_trial_intermediate_value, trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id, key, value):
        if (gathered := getattr(self._gathered, "attrs", None)) is not None:
            gathered[trial_id, key] = value  # written by one_transaction
            return None
        return self._call(self._backend.set_trial_user_attr, trial_id, key, value)

    def set_trial_system_attr(self, trial_id, key, value):
        return self._call(self._backend.set_trial_system_attr, trial_id, key, value)

    def get_trial(self, trial_id):
        return self._call(self._backend.get_trial, trial_id)

    def get_all_trials(self, study_id, deepcopy=True, states=None):
        return self._call(self._backend.get_all_trials, study_id, deepcopy, states)

    def get_n_trials(self, study_id, state=None):
        return self._call(self._backend.get_n_trials, study_id, state)

    def get_best_trial(self, study_id):
        return self._call(self._backend.get_best_trial, study_id)

    def remove_session(self) -> None:
        with contextlib.suppress(Exception):  # closing a session on a dead connection
            self._backend.remove_session()
