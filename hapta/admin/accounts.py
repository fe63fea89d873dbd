"""`hapta admin create | list | delete | totp-reset`: the admin accounts (hapta/auth/admins.py) from the command line,
on the database `hapta serve` uses (migrated first, as `hapta types` does). The first account can only be made here;
later ones from the dashboard's Admins page too.

    hapta admin create --email E [--password-stdin] [--no-totp]   prints the TOTP secret and URI, once
    hapta admin list
    hapta admin delete --email E                                  not the last account
    hapta admin totp-reset --email E                              a new factor; the account's sessions end
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path
from typing import Any, TextIO

from ..auth.admins import AdminAccounts
from ..protocol.errors import HaptaError


def add_commands(admin: argparse.ArgumentParser) -> None:
    """The subcommands of `hapta admin` (without one it prints the admin key and the dashboard's address)."""
    commands = admin.add_subparsers(dest="admin_command", metavar="{create,list,delete,totp-reset}")
    # each takes --config after its name too; SUPPRESS keeps `hapta admin --config X create` working as well
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", default=argparse.SUPPRESS, help="the app's config.py (default: ./config.py)")
    create = commands.add_parser("create", parents=[config], help="create an admin account (prints its TOTP secret)")
    create.add_argument("--email", required=True)
    create.add_argument("--password-stdin", action="store_true", help="read the password from the first line of "
                        "standard input (else it is asked for, twice, without echo)")
    create.add_argument("--no-totp", action="store_true", help="development only: no second factor")
    commands.add_parser("list", parents=[config], help="the admin accounts")
    delete = commands.add_parser("delete", parents=[config], help="delete an admin account (not the last)")
    delete.add_argument("--email", required=True)
    reset = commands.add_parser("totp-reset", parents=[config], help="a new second factor for an admin account "
                                "(prints it; its sessions end)")
    reset.add_argument("--email", required=True)


def read_password(from_stdin: bool, stdin: TextIO = sys.stdin) -> str:
    if from_stdin:
        return stdin.readline().rstrip("\r\n")
    if not stdin.isatty():
        raise SystemExit("hapta: admin create: no terminal to ask for the password: pass --password-stdin")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != password:
        raise SystemExit("hapta: admin create: the passwords differ")
    return password


def command(args: argparse.Namespace, app: Any, settings: Any, app_dir: Path, dsn: str) -> int:
    """Run one subcommand; its exit code. A refusal (a weak password, the last account) is one line on stderr."""
    password = read_password(args.password_stdin) if args.admin_command == "create" else ""
    try:
        for line in asyncio.run(_run(args, app, settings, app_dir, dsn, password)):
            print(line)
    except HaptaError as error:
        print(f"hapta: admin {args.admin_command}: {error.message}", file=sys.stderr)
        return 1
    return 0


async def _run(args: argparse.Namespace, app: Any, settings: Any, app_dir: Path, dsn: str,
               password: str) -> list[str]:
    import asyncpg

    from ..store.migrations import migrate
    from ..store.postgres import Database, create_pool
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, app_dir / "migrations")
    finally:
        await conn.close()
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        admins = AdminAccounts(Database(pool), require_totp=settings.production, issuer=f"{app.app_name} admin")
        if args.admin_command == "create":
            created = await admins.create(args.email, password, totp=not args.no_totp)
            return [f"admin {created['email']} created", *_factor_lines(created["totp"])]
        if args.admin_command == "list":
            return [f"{row['email']}  second factor: {'yes' if row['totp'] else 'NO'}  live sessions: "
                    f"{row['sessions']}  last sign-in: {_when(row['last_sign_in'])}"
                    for row in await admins.accounts()] or ["no admin accounts: `hapta admin create --email ...`"]
        if args.admin_command == "delete":
            await admins.delete(args.email, by=None)
            return [f"admin {args.email.strip().lower()} deleted; their sessions ended"]
        factor = await admins.reset_totp(args.email)
        return [f"admin {args.email.strip().lower()}: new second factor; their sessions ended",
                *_factor_lines(factor)]
    finally:
        await pool.close()


def _factor_lines(factor: dict[str, str] | None) -> list[str]:
    if factor is None:
        return ["no second factor (development only: production refuses this account's sign-in)"]
    return ["second factor (TOTP): add it to an authenticator app now, it is not shown again",
            f"  secret: {factor['secret']}", f"  uri:    {factor['uri']}"]


def _when(moment: Any) -> str:
    return "never" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")
