"""Keep Airflow's and Cosmos' messages that need no action out of the terminal of an in-process run.

What is dropped is named one by one (logger, words of the message) and only below ERROR: an error
always shows, and so does every warning of ours or one not listed here. Python deprecation warnings
are silenced for the libraries only (ours still show).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# (logger, words of the message): what each is, and why no one has to act on it
NOISE: tuple[tuple[str, str], ...] = (
    # dag.test() polls while a task waits for its upstream: once a second, 40 KB on a no-op night
    ("airflow.sdk.definitions.dag", "No tasks to run"),
    # Cosmos asks for the OpenLineage settings and says the provider is missing: lineage is not used here
    ("airflow.sdk._shared.configuration.parser", "[openlineage/"),
    ("airflow.configuration", "[openlineage/"),
    ("cosmos.operators.local", "Openlineage"),
    ("cosmos.operators.local", "OpenLineage"),
    # The dbt project's exposure (the dashboards) documents the marts' readers: nothing to run for it
    ("cosmos.airflow.graph", "DbtResourceType.EXPOSURE"),
)
LIBRARY_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


class NoiseFilter(logging.Filter):
    """Drops a logger's records below ERROR whose message holds one of `words`."""

    def __init__(self, words: list[str]) -> None:
        super().__init__()
        self.words = words

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted is not ours to hide
            return True
        return not any(word in message for word in self.words)


def _by_logger() -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, words in NOISE:
        grouped.setdefault(name, []).append(words)
    return grouped


@contextmanager
def quieted() -> Iterator[None]:
    """Install the filters for the duration of a block (a logger's filter sees the records it creates,
    whatever handlers Airflow configures meanwhile), then remove them."""
    installed = [(logging.getLogger(name), NoiseFilter(words)) for name, words in _by_logger().items()]
    for logger, flt in installed:
        logger.addFilter(flt)
    with warnings.catch_warnings():
        for category in LIBRARY_WARNINGS:
            warnings.filterwarnings("ignore", category=category)
            warnings.filterwarnings("default", category=category, module=r"reform_etl(\.|$)")
        try:
            yield
        finally:
            for logger, flt in installed:
                logger.removeFilter(flt)
