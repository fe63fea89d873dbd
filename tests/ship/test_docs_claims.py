"""The docs claim only what the code does (issue 33, items 9 and 10): every op, `hapta <command>`, `--flag` of a
hapta command and setting the docs name exists in the gateway's op table, the CLI's parser and hapta/settings.py;
and the install and build steps they show are the ones that work today. No servers: the tables are read from the
code, the names from the docs' code spans and code blocks (prose is for people, code spans are what they copy)."""
from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from hapta.cli import _parser
from hapta.config import App
from hapta.gateway.gateway import OP_NAMES
from tests.services import ROOT

DOCS = sorted(ROOT.glob("docs/*.md")) + [ROOT / "README.md"]
HAPTA = ROOT / "hapta"

CODE_SPAN = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)^\1\s*$", re.MULTILINE | re.DOTALL)

# Dotted names in code spans that start like an op (`records.`, `auth.`, ...) but are none, each with why.
NOT_OPS = {
    "records.craete": "docs/limits.md shows the error a misspelt op gets",
}
# Flags named alone (`--gil`) that belong to another program than hapta, each with whose.
OTHER_FLAGS = {
    "--gil": "Python's (-X gil / PYTHON_GIL), docs/files.md",
    "--snapshot": "pg_dump's, docs/operations.md",
    "--profile": "bench.scale's, docs/realtime.md",
    "--trees": "bench.cpu's, docs/realtime.md",
}
# Environment names the docs name that hapta/settings.py does not read, each with the file that does.
OTHER_SETTINGS = {
    "HAPTA_TEST_DATABASE_URL": "tests/services.py",            # the tests' PostgreSQL
    "HAPTA_GATEWAY": "dashboard/vite.config.ts",               # the dashboard's dev server's socket target
    "PROMETHEUS_MULTIPROC_DIR": "hapta/gateway/supervisor.py",   # set by --workers for its workers
}


def code_pieces(doc: Path) -> list[str]:
    """The doc's inline code spans (outside code blocks) and each line of its code blocks."""
    text = doc.read_text()
    pieces = CODE_SPAN.findall(FENCE.sub("", text))
    for block in FENCE.finditer(text):
        pieces += block.group(2).splitlines()
    return pieces


def doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


# ---- ops ------------------------------------------------------------------------------------------------------

NAMESPACES = {op.split(".")[0] for op in OP_NAMES if "." in op}
DOTTED = re.compile(r"(?<![\w./@-])([a-z_]+(?:\.[a-z_0-9]+)+)(\.\*)?(?![\w/(-])")
FILE_NAME = re.compile(r"\.(py|md|sql|ts|tsx|js|json|txt|html|subject)$")
# Names the code itself writes as strings: events (`records.change`, `files.ack`), messages (`files.chunk`).
CODE_STRINGS = {name for path in HAPTA.rglob("*.py")
                for name in re.findall(r"[\"']([a-z_]+(?:\.[a-z_0-9]+)+)[\"']", path.read_text())}


def app_section_field(name: str) -> bool:
    """`functions.timeout` and the like: a field of one of App's sections (App.functions.timeout)."""
    section, _, field = name.partition(".")
    found = {f.name: f for f in dataclasses.fields(App)}.get(section)
    if found is None:
        return False
    default = found.default if found.default_factory is dataclasses.MISSING else found.default_factory()
    return dataclasses.is_dataclass(default) and field in {f.name for f in dataclasses.fields(default)}


def module_path(name: str) -> bool:
    """`auth.accounts.Accounts` and the like: a module of the hapta package (and what is in it)."""
    parts = name.split(".")
    return any((HAPTA.joinpath(*parts[:n]).with_suffix(".py")).is_file()
               or HAPTA.joinpath(*parts[:n], "__init__.py").is_file() for n in range(len(parts), 0, -1))


def unknown_ops(doc: Path) -> list[str]:
    unknown = []
    for piece in code_pieces(doc):
        for name, star in DOTTED.findall(piece):
            if name.split(".")[0] not in NAMESPACES or FILE_NAME.search(name) or name in NOT_OPS:
                continue
            if name in OP_NAMES or name in CODE_STRINGS or app_section_field(name) or module_path(name):
                continue
            if star and any(op.startswith(name + ".") for op in OP_NAMES):   # `auth.mfa.*`
                continue
            unknown.append(name)
    return unknown


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_op_named_is_an_op(doc):
    assert unknown_ops(doc) == [], f"{doc_id(doc)} names ops the gateway does not have"


# ---- the command line -----------------------------------------------------------------------------------------

def cli_tables() -> tuple[dict[str, set[str]], set[str]]:
    """Each command of `hapta` with its flags, and the flags before the command (--debug)."""
    parser = _parser()
    sub = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    def flags(command: argparse.ArgumentParser) -> set[str]:
        """A command's flags, with those of its own subcommands (`hapta admin create --email`)."""
        found = {flag for action in command._actions for flag in action.option_strings}
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                found |= set().union(*(flags(nested) for nested in action.choices.values()))
        return found
    commands = {name: flags(command) for name, command in sub.choices.items()}
    return commands, {flag for action in parser._actions for flag in action.option_strings}


COMMAND = re.compile(r"(?<![\w/.\"'-])(?:bin/)?hapta((?:\s+--debug)?)\s+([a-z][a-z-]*)")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def cli_mistakes(doc: Path) -> list[str]:
    commands, global_flags = cli_tables()
    every_flag = set().union(global_flags, *commands.values())
    wrong = []
    for piece in code_pieces(doc):
        found = list(COMMAND.finditer(piece))
        for n, match in enumerate(found):
            command = match.group(2)
            if command not in commands:
                wrong.append(f"hapta {command}")
                continue
            rest = piece[match.end():found[n + 1].start() if n + 1 < len(found) else len(piece)]
            wrong += [f"hapta {command} {flag}" for flag in FLAG.findall(rest)
                      if flag not in commands[command] | global_flags]
        if not found and FLAG.fullmatch(piece.strip()) and piece.strip() not in every_flag | set(OTHER_FLAGS):
            wrong.append(piece.strip())   # a flag on its own: the docs mean one of hapta's
    return wrong


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_command_and_flag_named_is_in_the_parser(doc):
    assert cli_mistakes(doc) == [], f"{doc_id(doc)} names commands or flags `hapta` does not have"


# ---- settings -------------------------------------------------------------------------------------------------

ENV_NAME = re.compile(r"(?<![A-Za-z0-9_])((?:HAPTA|S3|SMTP|REDIS|DATABASE|PROMETHEUS|AWS)_[A-Z0-9_]*[A-Z0-9])"
                      r"(?![A-Za-z0-9_])")
SETTINGS_READ = set(re.findall(r"get\(\"([A-Z0-9_]+)\"", (HAPTA / "settings.py").read_text()))


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_setting_named_is_read(doc):
    settings = (HAPTA / "settings.py").read_text()
    unknown = sorted({name for name in ENV_NAME.findall(doc.read_text())
                      if name not in settings and name not in OTHER_SETTINGS})
    assert unknown == [], f"{doc_id(doc)} names settings hapta/settings.py does not read"


def test_the_settings_read_elsewhere_are_read_where_it_says():
    for name, where in OTHER_SETTINGS.items():
        assert name in (ROOT / where).read_text(), (name, where)


def test_every_setting_read_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    assert SETTINGS_READ and sorted(name for name in SETTINGS_READ if name not in readme) == []


def test_the_checks_catch_what_they_are_for(tmp_path):
    """A doc with a stale op, command, flag and setting is caught on each."""
    stale = tmp_path / "stale.md"
    stale.write_text("Call `records.upsert` or `records.create`; run `hapta serve --watch` and `hapta seed`, or\n"
                     "`--reload`; set `HAPTA_NO_SUCH` or `HAPTA_ENV`.\n\n```sh\nbin/hapta admin --prot 9\n```\n")
    assert unknown_ops(stale) == ["records.upsert"]
    assert cli_mistakes(stale) == ["hapta serve --watch", "hapta seed", "hapta admin --prot"]
    settings = (HAPTA / "settings.py").read_text()
    assert [name for name in ENV_NAME.findall(stale.read_text()) if name not in settings] == ["HAPTA_NO_SUCH"]


# ---- install and build (item 9) -------------------------------------------------------------------------------

JS_README = ROOT / "clients" / "js" / "README.md"
REACT_README = ROOT / "clients" / "react" / "README.md"


def commands_shown(doc: Path) -> list[str]:
    """What a reader would copy and run: the lines of the doc's code blocks (inline spans also say what fails)."""
    return [line.strip() for block in FENCE.finditer(doc.read_text()) for line in block.group(2).splitlines()]


@pytest.mark.parametrize("doc", [ROOT / "README.md", JS_README, REACT_README], ids=doc_id)
def test_no_doc_tells_to_install_the_unpublished_packages_from_npm(doc):
    """@hapta/client and @hapta/react are not on npm yet: `npm install @hapta/client` fails."""
    for command in commands_shown(doc):
        assert not re.search(r"npm (install|i)\b[^#]*\s@hapta/", command), f"{doc_id(doc)}: {command}"


@pytest.mark.parametrize("doc", [ROOT / "README.md", JS_README], ids=doc_id)
def test_the_js_client_is_installed_from_the_checkout_or_a_packed_tarball(doc):
    text = doc.read_text()
    assert "not published to npm yet" in text
    assert re.search(r"npm install [^\s`]*clients/js\b", text), "the checkout's folder"
    assert "npm pack" in text and "hapta-client-<version>.tgz" in text


def test_building_the_python_package_says_it_needs_build():
    readme = (ROOT / "README.md").read_text()
    paragraph = next(part for part in readme.split("\n\n") if "python -m build" in part)
    assert "needs the `build` package" in paragraph and "pip install build" in paragraph


def test_functions_doc_says_reload_takes_functions_in_place():
    """`--reload` restarts function workers on a change of functions/ (tests/functions/test_schedule.py)."""
    text = (ROOT / "docs" / "functions.md").read_text()
    assert "**`hapta serve --reload`** takes changes of `functions/**/*.py` in place" in text
    assert not [line for line in text.splitlines() if "reload" in line and "not yet" in line.lower()]


def test_the_protocol_says_what_a_channel_member_carries():
    """docs/protocol.md's Channels section names every key of a member as the gateway builds it, and `profile`."""
    from hapta.live.channels import _member
    section = (ROOT / "docs" / "protocol.md").read_text().split("## Channels", 1)[1].split("\n## ", 1)[0]
    said = re.search(r"\*\*What a member carries\.\*\*(.*?)\n\n", section, re.DOTALL)
    assert said, "docs/protocol.md, Channels: no paragraph says what a member carries"
    shown = "{" + ", ".join(_member("p:1", "u1", "user")) + "}"
    assert f"`{shown}`" in said.group(1) and "`profile`" in said.group(1)
