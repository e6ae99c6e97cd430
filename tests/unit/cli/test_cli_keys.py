"""``loopml keys create / list / revoke`` against a real embedded project."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from typer.testing import Result

from loopml.cli import keys, main
from loopml.config import Settings
from loopml.errors import AuthenticationError
from loopml.serving.auth import get_keys

Cli = Callable[..., Result]

if "keys" not in [g.name for g in main.app.registered_groups]:
    main.app.add_typer(keys.app, name="keys")

_KEY = re.compile(r"^lml_[A-Za-z0-9]{8}_[A-Za-z0-9_\-]{43}$")


def assert_clean_error(res: Result, code: str) -> None:
    assert res.exit_code == 1, res.output
    assert code in res.output
    assert "Traceback" not in res.output


def test_create_prints_the_key_once(cli: Cli, project_settings: Settings) -> None:
    res = cli("keys", "create", "ci")
    assert res.exit_code == 0, res.output
    key = res.stdout.strip()
    assert _KEY.match(key), res.stdout  # stdout holds the key alone: KEY=$(loopml keys create ci)
    assert "not shown again" in res.stderr
    assert "Created API key ci" in res.stderr and "roles: predict" in res.stderr
    assert get_keys(project_settings).verify(key, "predict").name == "ci"

    listing = cli("keys", "list")
    assert listing.exit_code == 0, listing.output
    assert key[13:] not in listing.output  # the secret is never shown again


def test_create_with_roles(cli: Cli, project_settings: Settings) -> None:
    res = cli("keys", "create", "ops", "--role", "admin", "-r", "predict")
    assert res.exit_code == 0, res.output
    assert "roles: predict, admin" in res.stderr
    assert get_keys(project_settings).verify(res.stdout.strip(), "admin").name == "ops"


def test_create_errors(cli: Cli) -> None:
    assert cli("keys", "create", "ci").exit_code == 0
    assert_clean_error(cli("keys", "create", "ci"), "CONFLICT")
    res = cli("keys", "create", "x", "--role", "root")
    assert_clean_error(res, "INVALID_INPUT")
    assert "unknown role 'root'" in res.output
    assert_clean_error(cli("keys", "create", "bad/name"), "INVALID_INPUT")


def test_list(cli: Cli) -> None:
    res = cli("keys", "list")
    assert res.exit_code == 0, res.output
    assert "No API keys" in res.output and "loopml keys create" in res.output
    ci_key = cli("keys", "create", "ci").stdout.strip()
    cli("keys", "create", "ops", "--role", "admin")
    cli("keys", "revoke", "ci")
    res = cli("keys", "list")
    assert res.exit_code == 0, res.output
    header = next(line for line in res.output.splitlines() if line.lstrip().startswith("id"))
    assert all(col in header for col in ("name", "roles", "created", "revoked"))
    ci = next(line for line in res.output.splitlines() if " ci " in line)
    ops = next(line for line in res.output.splitlines() if " ops " in line)
    assert ci.startswith(ci_key[4:12]) and "predict" in ci and re.search(r"\d{4}-\d\d-\d\d .*\d{4}-\d\d-\d\d", ci)
    assert "admin" in ops and ops.rstrip().endswith("-")
    assert "2 keys (1 revoked)" in res.output
    active = cli("keys", "list", "--active")
    assert " ci " not in active.output and " ops " in active.output and "1 key" in active.output


def test_revoke(cli: Cli, project_settings: Settings) -> None:
    key = cli("keys", "create", "ci").stdout.strip()
    key_id = key[4:12]
    res = cli("keys", "revoke", key_id)
    assert res.exit_code == 0, res.output
    assert f"Revoked API key ci ({key_id})" in res.output
    with pytest.raises(AuthenticationError, match="revoked"):
        get_keys(project_settings).verify(key, "predict")
    again = cli("keys", "revoke", "ci")
    assert again.exit_code == 0, again.output
    assert "already revoked" in again.output
    missing = cli("keys", "revoke", "nope")
    assert_clean_error(missing, "NOT_FOUND")
    assert "'nope'" in missing.output


def test_keys_help(cli: Cli) -> None:
    res = cli("keys", "--help")
    assert res.exit_code == 0, res.output
    for command in ("create", "list", "revoke"):
        assert command in res.output
