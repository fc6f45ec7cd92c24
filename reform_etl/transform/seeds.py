"""The reference data (dbt seeds): fingerprint, last load, (re)load."""

from __future__ import annotations

import hashlib
import logging

from reform_etl.config import settings
from reform_etl.transform.dbt import run_dbt
from reform_etl.transform.decision import transform_ddl

log = logging.getLogger(__name__)


def seeds_fingerprint() -> str:
    """sha256 over the seed files' names and bytes: changes exactly when a seed file changes."""
    digest = hashlib.sha256()
    folder = settings().seeds
    for path in sorted(folder.rglob("*.csv")) if folder.is_dir() else []:
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def last_seeds_fingerprint(dsn: str | None = None) -> str | None:
    from reform_etl.warehouse import connect

    with connect(dsn) as conn:
        transform_ddl(conn)  # audit.reference_data_loads, for a warehouse bootstrapped before it existed
        row = conn.execute(
            "select fingerprint from audit.reference_data_loads order by load_id desc limit 1"
        ).fetchone()
        conn.commit()
    return row[0] if row else None


def seeds_changed(dsn: str | None = None) -> bool:
    return last_seeds_fingerprint(dsn) != seeds_fingerprint()


def record_seeds_loaded(run_id: str | None, dsn: str | None = None) -> str:
    from psycopg.types.json import Jsonb

    from reform_etl.warehouse import connect

    fingerprint = seeds_fingerprint()
    names = sorted(p.stem for p in settings().seeds.glob("*.csv"))
    with connect(dsn) as conn:
        transform_ddl(conn)  # audit.reference_data_loads, for a warehouse bootstrapped before it existed
        conn.execute(
            "insert into audit.reference_data_loads (fingerprint, run_id, seeds) values (%s, %s, %s)",
            (fingerprint, run_id, Jsonb(names)),
        )
        conn.commit()
    return fingerprint


def load_seeds(run_id: str | None = None, force: bool = False, dsn: str | None = None) -> bool:
    """`dbt seed` when the seed files differ from the last load into this warehouse; returns whether it ran."""
    from reform_etl import warehouse

    dsn = dsn or warehouse.dsn()
    if not force and not seeds_changed(dsn):
        log.info("reference data unchanged since its last load; dbt seed skipped")
        return False
    run_dbt(["seed", "--full-refresh"], dsn, check=True)
    record_seeds_loaded(run_id, dsn)
    return True
