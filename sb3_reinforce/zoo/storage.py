"""Shared Optuna storage for ``train --optimize --storage URL --study-name NAME`` run by several workers."""

from __future__ import annotations

import random
import time


def is_database_url(storage: str) -> bool:
    """
    Tell a database storage from an Optuna journal file.

    :param storage: The ``--storage`` argument.
    :return: True for an SQLAlchemy URL (``postgresql://...``, ``sqlite:///...``), False for a journal
        file (a path ending in ``.log``).
    """
    return "://" in storage and not storage.endswith(".log")


def prepare_database(storage: str, attempts: int = 8, seed: int | None = None) -> None:
    """
    Create Optuna's tables in a database storage, tolerating workers that start at the same time.

    Optuna creates its schema when a worker first opens the database; two workers doing so at once
    on an empty PostgreSQL database can collide (``duplicate key ... CREATE TYPE studydirection``).
    Each worker calls this before rl-zoo3 opens the storage: the first one creates the schema and the
    others, after a failed attempt, retry after a short random pause and find it there.

    :param storage: SQLAlchemy URL of the database.
    :param attempts: Number of tries before the last error is raised.
    :param seed: Seed of the random pauses (None: from the system).
    """
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    rng = random.Random(seed)
    for attempt in range(attempts):
        try:
            optuna.storages.RDBStorage(storage)
            return
        except SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 + rng.random() * (attempt + 1) * 0.5)
