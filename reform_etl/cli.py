"""`reform-etl`: the command line of the warehouse (the nightly run, loads, sample, status, DSN).

Exit codes: 0 when the command completed, even if some files were rejected (that is data, and
it is reported); 1 when the pipeline itself failed; 2 for a usage error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reform_etl.config import TIMEZONE, as_local, settings

console = Console()


_DSN_HINT = "(with its password: `reform-etl dsn`; read-only: `reform-etl dsn --role bi_reader`)"


def _summary_tables(summary: dict) -> None:
    console.print(f"[bold]Run / lượt chạy[/] {escape(summary['run_id'])}")  # a line of its own: a title wraps it
    files = Table(title="Files / tệp", show_header=False)
    for label, key in (("files seen", "files_seen"), ("loaded", "files_loaded"), ("rejected", "files_rejected"),
                       ("duplicates (loaded once)", "files_duplicate"), ("failed", "files_failed"),
                       ("still being written (next run)", "files_waiting")):
        files.add_row(label, str(summary.get(key, 0)))
    console.print(files)
    rows = Table(title="Rows per kind")
    for column in ("kind", "in files", "loaded", "quarantined", "warnings"):
        rows.add_column(column, justify="left" if column == "kind" else "right")
    for kind, counts in summary.get("rows", {}).items():
        rows.add_row(kind, *(str(counts.get(k) or 0) for k in ("rows_total", "rows_loaded", "rows_quarantined",
                                                               "warnings")))
    console.print(rows)
    from reform_etl.report import rejection

    for item in summary.get("rejected", []):  # the catalog's rule, in Vietnamese first, then the loader's detail
        rule, vi, en = rejection(item)
        detail = f" ({item['error']})" if item["error"] not in (vi, en) else ""
        console.print(f"[yellow]rejected[/] {item['path']}: [bold]{rule}[/] {vi} / {en}{detail}")
    for sentence in summary.get("replacements", []):
        console.print(f"[yellow]replaced by a shorter file[/] {escape(sentence)}")
    for path in summary.get("waiting", []):
        console.print(f"[yellow]waiting[/] {path}: still being written, a later run loads it")
    if "dbt" in summary:
        from reform_etl.orchestration import dbt_text

        console.print(dbt_text(summary["dbt"]))
    if summary.get("report"):
        console.print(f"report: [bold]{summary['report']}[/]")
    if summary.get("docs"):
        console.print(f"dbt docs: [bold]{summary['docs']}[/]")
    console.print(f"warehouse DSN: [bold]{summary.get('dsn')}[/] {_DSN_HINT}")


def cmd_run(args: argparse.Namespace) -> int:
    from reform_etl import orchestration

    landing = Path(args.landing or settings().landing).resolve()
    logical_date = datetime.fromisoformat(args.date).replace(tzinfo=UTC) if args.date else None
    result = orchestration.run_nightly(landing, logical_date=logical_date, dsn=args.dsn)
    _summary_tables(result.summary)
    return 0 if result.succeeded else 1


def cmd_load(args: argparse.Namespace) -> int:
    from reform_etl import ingest, runs

    run_id = f"load__{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    runs.start_run(args.dsn, run_id, triggered_by="cli load", owner=runs.this_process())
    landing = Path(args.landing or settings().landing).resolve()
    results = ingest.load_paths([Path(p) for p in args.paths], run_id=run_id, landing=landing, dsn=args.dsn)
    if not args.no_validate:
        from reform_etl import progress

        with progress.shown(console):
            awaiting = runs.files_awaiting_validation(args.dsn)
            progress.total("validated", len(awaiting))
            for file_id in awaiting:
                runs.validate_file(args.dsn, file_id, run_id)
        runs.warn_checks(args.dsn, run_id)
    _summary_tables(runs.finish_run(args.dsn, run_id, report_path=None if args.no_validate else
                                    runs.build_report(args.dsn, run_id)))
    _seen_before(results)
    return 0


def _seen_before(results: list) -> None:
    """Files this run did not register: seen by an earlier run (reported as they ended), or still being written."""
    for r in results:
        if r.seen_before:
            console.print(f"[yellow]seen before[/] {r.path}: file #{r.file_id} {r.status}"
                          + (f" [bold]{r.error_code}[/] {r.error}" if r.error_code else ""))
        elif r.status == "waiting":
            console.print(f"[yellow]waiting[/] {r.path}: [bold]{r.error_code}[/] {r.error}")


def cmd_sample(args: argparse.Namespace) -> int:
    from reform_etl import sample

    out = Path(args.out or settings().landing)
    files = sample.generate(out, seed=args.seed)
    console.print(f"wrote {len(files)} sample files for Phú Thọ into [bold]{out}[/]")
    return 0


def local_minute(value: datetime | None, since: datetime | None = None) -> str:
    """A time in the provinces' zone, to the minute, with the zone: '2026-12-02 22:41 +07'; only the hour when
    it is the same day as `since`."""
    if value is None:
        return ""
    local = as_local(value)
    if since is not None and local.date() == as_local(since).date():
        return f"{local:%H:%M %Z}"
    return f"{local:%Y-%m-%d %H:%M %Z}"


def cmd_status(args: argparse.Namespace) -> int:
    from reform_etl.warehouse import connect

    with connect(args.dsn) as conn:
        runs = conn.execute(
            "select run_id, status, started_at, ended_at, error from audit.pipeline_runs "
            "order by started_at desc limit %s", (args.limit,)).fetchall()
        files = conn.execute(
            "select file_id, kind, file_name, status, rows_total, rows_loaded, rows_quarantined, warnings, error_code "
            "from audit.submission_files order by file_id desc limit %s", (args.limit * 5,)).fetchall()
    table = Table(title=f"Last runs (giờ / times {TIMEZONE})")
    for column in ("run", "status", "started", "ended", "error"):
        table.add_column(column)
    for run_id, status, started, ended, error in runs:
        table.add_row(run_id, status, local_minute(started), local_minute(ended, since=started), (error or "")[:60])
    console.print(table)
    table = Table(title="Last files")
    for column in ("id", "kind", "file", "status", "rows", "loaded", "quarantined", "warnings", "reason"):
        table.add_column(column)
    for row in files:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)
    return 0


def cmd_dsn(args: argparse.Namespace) -> int:
    from reform_etl import warehouse

    # args.dsn: resolved (the embedded warehouse started if needed) and bootstrapped by main(), which
    # gives bi_reader and auditor their password the first time
    print(warehouse.role_dsn(args.role, args.dsn) if args.role else args.dsn)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from reform_etl import runs
    from reform_etl.warehouse import connect

    run_id = args.run
    if not run_id:
        with connect(args.dsn) as conn:
            row = conn.execute("select run_id from audit.pipeline_runs order by started_at desc limit 1").fetchone()
        if not row:
            console.print("no run yet: start one with `reform-etl run`")
            return 1
        run_id = row[0]
    print(runs.build_report(args.dsn, run_id))
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from reform_etl import progress
    from reform_etl.backfill import backfill
    from reform_etl.transform.dbt import environment

    # dbt's line per model gives way to the progress; its errors still show (DBT_QUIET=False: every line)
    with progress.shown(console), environment({"DBT_QUIET": os.environ.get("DBT_QUIET", "True")}):
        summary = backfill(args.period_from, args.period_to, dsn=args.dsn)
    console.print(f"[bold]backfill {summary['period_from']} .. {summary['period_to']}[/]: marts rebuilt from raw "
                  f"in {summary['seconds']:.0f} s / dựng lại các bảng mart từ dữ liệu thô")
    marts = Table(title="Rows per mart now / số dòng mỗi bảng mart")
    marts.add_column("mart")
    marts.add_column("rows", justify="right")
    for name, count in summary.get("marts", {}).items():
        marts.add_row(name, f"{count:,}")
    console.print(marts)
    _summary_tables(summary)
    return 0


def cmd_warehouse(args: argparse.Namespace) -> int:
    from reform_etl import embedded_pg, warehouse

    cfg = settings()
    if args.action == "stop":
        stopped = embedded_pg.stop(cfg.pgdata)
        console.print("embedded warehouse stopped" if stopped else "embedded warehouse was not running")
        return 0
    dsn = warehouse.resolve_dsn(cfg)
    warehouse.bootstrap(dsn)
    console.print(f"warehouse ready: [bold]{warehouse.redacted(dsn)}[/] {_DSN_HINT}; passwords in {cfg.credentials}")
    return 0


DOCS_ARGS = ["docs", "generate", "--static", "--quiet"]  # --static: one file that opens from the disk


def static_docs(target: Path) -> Path:
    """The one-file dbt docs `dbt docs generate --static` writes in a target folder."""
    return target / "static_index.html"


def cmd_docs(args: argparse.Namespace) -> int:
    from reform_etl.transform import run_dbt

    result = run_dbt(DOCS_ARGS, args.dsn)
    if not result.success:
        console.print(f"[red]dbt docs generate failed:[/] {result.exception}")
        return 1
    console.print("dbt docs (every mart and column, in Vietnamese and English; opens from the disk, no server):")
    print(static_docs(settings().dbt_project / "target"))
    return 0


def cmd_late(args: argparse.Namespace) -> int:
    from reform_etl import late, warehouse

    rows = late.chase_list(warehouse.dsn(), args.period)
    title = f"Cần nhắc / to chase — {args.period or 'mọi kỳ / every period'}: {len(rows)}"
    table = Table(title=title)
    for _key, heading in late.COLUMNS:
        table.add_column(heading, overflow="fold")
    for row in rows:
        table.add_row(*(late.cell(row, key) for key, _heading in late.COLUMNS))
    console.print(table)
    out = Path(args.out) if args.out else settings().reports / f"late_{args.period or 'all'}.xlsx"
    console.print(f"xlsx: [bold]{late.write_xlsx(rows, out)}[/]")
    return 0


def cmd_grant_unit(args: argparse.Namespace) -> int:
    from reform_etl import access

    access.grant_unit(args.role, args.unit_code, password_env=args.password_env, nologin=args.nologin)
    console.print(f"{args.role} now reads the marts, limited to unit {args.unit_code} (and any it had before)")
    return 0


def cmd_airflow(args: argparse.Namespace) -> int:
    from reform_etl.orchestration import standalone

    app = standalone.prepare(args.dsn, port=args.port)
    console.print(f"Airflow UI / giao diện: [bold]{app.url}[/]  login / đăng nhập: [bold]{app.admin_user}[/] / "
                  f"[bold]{app.admin_password}[/] (kept in {app.home / 'admin_password'})")
    console.print(f"metadata database / CSDL siêu dữ liệu: {app.metadata_database}; Airflow home: {app.home}. "
                  "Ctrl-C stops it.")
    return standalone.serve(app, on_ready=lambda: console.print(
        "[green]ready / sẵn sàng:[/] DAGs unpaused; the nightly runs at 01:00 Asia/Ho_Chi_Minh by itself"))


def build_parser() -> argparse.ArgumentParser:
    from reform_etl.warehouse import ROLES

    parser = argparse.ArgumentParser(prog="reform-etl", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the nightly pipeline (the reform_nightly DAG, in-process)")
    run.add_argument("--landing", help="landing folder (default ./landing or $REFORM_LANDING)")
    run.add_argument("--date", help="logical date YYYY-MM-DD (default: now)")
    run.set_defaults(func=cmd_run)

    load = sub.add_parser("load", help="load (and validate) files or folders now, without dbt")
    load.add_argument("paths", nargs="+")
    load.add_argument("--landing", help="landing folder the paths live in (kind = first sub-folder)")
    load.add_argument("--no-validate", action="store_true", help="register and load into raw only")
    load.set_defaults(func=cmd_load)

    smp = sub.add_parser("sample", help="write the sample province's submissions into a landing folder")
    smp.add_argument("--out", help="folder (default ./landing or $REFORM_LANDING)")
    smp.add_argument("--seed", type=int, default=2026)
    smp.set_defaults(func=cmd_sample)

    status = sub.add_parser("status", help="last runs and files")
    status.add_argument("--limit", type=int, default=10)
    status.set_defaults(func=cmd_status)

    dsn = sub.add_parser("dsn", help="print the warehouse DSN, password included (starts the embedded warehouse "
                                     "if needed)")
    dsn.add_argument("--role", choices=ROLES,
                     help="the DSN of this role (bi_reader: read-only, the marts) instead of the owner's")
    dsn.set_defaults(func=cmd_dsn)

    report = sub.add_parser("report", help="print the path of a run's report (default: the last run)")
    report.add_argument("run", nargs="?")
    report.set_defaults(func=cmd_report)

    backfill = sub.add_parser("backfill", help="rebuild the marts of a range of periods from raw")
    backfill.add_argument("--from", dest="period_from", required=True, help="YYYY-MM")
    backfill.add_argument("--to", dest="period_to", required=True, help="YYYY-MM")
    backfill.set_defaults(func=cmd_backfill)

    sub.add_parser("docs", help="generate the dbt docs of the marts and print where they are").set_defaults(
        func=cmd_docs)

    late = sub.add_parser("late", help="who to chase: late, missing, incomplete and rejected submissions per unit "
                                       "(a table here, and an .xlsx)")
    late.add_argument("--period", help="YYYY-MM (or YYYY: a year's months and the yearly kinds); default: all")
    late.add_argument("--out", help="the .xlsx to write (default reports/late_<period>.xlsx)")
    late.set_defaults(func=cmd_late)

    grant = sub.add_parser("grant-unit", help="a BI role that sees only this unit's rows in the marts")
    grant.add_argument("role")
    grant.add_argument("unit_code")
    grant.add_argument("--password-env", help="name of an environment variable holding the role's password")
    grant.add_argument("--nologin", action="store_true",
                       help="create the role without login (others reach it by SET ROLE); without this flag "
                            "a new role needs --password-env")
    grant.set_defaults(func=cmd_grant_unit)

    af = sub.add_parser("airflow", help="run Airflow standalone (UI, scheduler...): the nightly runs by itself")
    af.add_argument("--port", type=int, help="UI / API port (default 8080 or $REFORM_AIRFLOW_PORT)")
    af.set_defaults(func=cmd_airflow)

    wh = sub.add_parser("warehouse", help="start (and bootstrap) or stop the embedded warehouse")
    wh.add_argument("action", choices=["start", "stop"])
    wh.set_defaults(func=cmd_warehouse)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    try:
        if args.func not in (cmd_sample, cmd_warehouse):
            from reform_etl import warehouse

            # The one place a command finds its warehouse; every step gets it passed (the Airflow tasks
            # and dbt processes a command starts read it from WAREHOUSE_DSN).
            args.dsn = warehouse.resolve_dsn()
            os.environ["WAREHOUSE_DSN"] = args.dsn
            warehouse.bootstrap(args.dsn)  # idempotent; a new or upgraded warehouse is ready
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the pipeline itself failed: say so plainly, exit non-zero
        logging.getLogger("reform_etl").debug("command failed", exc_info=True)
        console.print(f"[red]failed:[/] {type(exc).__name__}: {exc}")
        if args.verbose:
            console.print_exception()
        return 1


if __name__ == "__main__":
    sys.exit(main())
