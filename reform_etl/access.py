"""Unit-scoped BI accounts: a role that sees only its units' rows in the marts (SPEC §5, RLS)."""

from __future__ import annotations

import os
import re

from psycopg import sql

from reform_etl.warehouse import connect

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class RoleCannotLogIn(ValueError):
    """grant_unit was asked to create a role that could not log in, without nologin=True."""


def grant_unit(role: str, unit_code: str, password_env: str | None = None, dsn: str | None = None,
               nologin: bool = False) -> None:
    """Create `role` if needed, let it read the marts, and bind it to `unit_code`.

    The role becomes a member of bi_reader, so it reads whatever bi_reader reads (dbt re-grants
    bi_reader on every build); the marts' row-level policies then show it only the rows of the
    units it is bound to. Call again with another unit to widen it. A password, if any, comes
    from the environment variable named by `password_env`, never from the command line.

    A new role needs a password (it logs in) or `nologin=True` (said explicitly): raises
    RoleCannotLogIn otherwise, ValueError for a bad name or an empty variable.
    """
    if not _ROLE_NAME.match(role):
        raise ValueError(f"role name must match {_ROLE_NAME.pattern}: {role!r}")
    if role in ("bi_reader", "auditor", "reform_loader", "reform_transformer"):
        raise ValueError(f"{role} is a shared role; bind a role of its own to a unit")
    password = os.environ.get(password_env) if password_env else None
    if password_env and not password:
        raise ValueError(f"environment variable {password_env} is empty or unset")
    if password and nologin:
        raise ValueError("--password-env and --nologin contradict each other: a role either logs in or not")
    with connect(dsn) as conn:
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
        if not exists and not password and not nologin:
            raise RoleCannotLogIn(
                f"{role} sẽ là một vai trò không đăng nhập được: hãy cho mật khẩu bằng --password-env BIẾN "
                "(tên một biến môi trường chứa mật khẩu), hoặc thêm --nologin nếu đó là ý muốn. / "
                f"{role} would be a role that cannot log in: give it a password with --password-env VAR (the "
                "name of an environment variable holding it), or pass --nologin if that is what you want "
                "(other accounts then reach it by SET ROLE).")
        if not exists:
            conn.execute(sql.SQL("create role {} nologin").format(sql.Identifier(role)))
        if password:
            conn.execute(sql.SQL("alter role {} login password {}").format(sql.Identifier(role), sql.Literal(password)))
        conn.execute(sql.SQL("grant bi_reader to {}").format(sql.Identifier(role)))
        conn.execute(
            "insert into audit.unit_role_bindings (role_name, unit_code) values (%s, %s) on conflict do nothing",
            (role, unit_code),
        )
        conn.commit()


def revoke_unit(role: str, unit_code: str, dsn: str | None = None) -> None:
    with connect(dsn) as conn:
        conn.execute("delete from audit.unit_role_bindings where role_name = %s and unit_code = %s", (role, unit_code))
        conn.commit()
