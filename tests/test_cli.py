"""The CLI surface: every command explains itself; init writes a config the loader accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli
from typer.main import get_command

from wechat_avatar.cli import app
from wechat_avatar.config import DEFAULT_DROP, load_config
from wechat_avatar.render import CATEGORIES


def _walk(group, path: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """(path, click command) for every command and sub-command (`train sft` …)."""
    for name, command in group.commands.items():
        yield (*path, name), command
        if hasattr(command, "commands"):
            yield from _walk(command, (*path, name))


COMMANDS = dict(sorted(_walk(get_command(app))))


def test_the_issue_commands_exist() -> None:
    names = {" ".join(path) for path in COMMANDS}
    assert {"init", "ingest", "messages", "stats", "synth", "types", "dataset"} <= names
    assert {"train", "train pretrain", "train sft", "eval", "chat", "run", "serve", "web"} <= names


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = run_cli(*path, "--help")
    assert result.returncode == 0, result.stderr
    doc = COMMANDS[path].help
    assert doc and doc.split("\n")[0][:40] in " ".join(result.stdout.split())
    if path[-1] in {"ingest", "messages", "stats", "dataset", "sft", "pretrain", "eval", "chat", "run", "serve"}:
        assert "--workspace" in result.stdout


def test_init_writes_a_commented_config_that_loads(tmp_path: Path) -> None:
    target = tmp_path / "avatar.yaml"
    result = run_cli("init", target)
    assert result.returncode == 0, result.stderr
    text = target.read_text(encoding="utf-8")
    assert "# IMEI used to derive the EnMicroMsg.db key" in text and "1234567890ABCDEF" in text
    assert load_config(target) == load_config(None)
    again = run_cli("init", target)
    assert again.returncode == 2 and "--force" in again.stderr
    target.write_text(text.replace("quote_context: false", "quote_context: true"), encoding="utf-8")
    assert load_config(target).render.quote_context is True


def test_config_in_the_current_folder_is_picked_up(tmp_path: Path) -> None:
    (tmp_path / "avatar.yaml").write_text("ingest:\n  timezone: Mars/Olympus\n")
    result = run_cli("stats", cwd=tmp_path)
    assert result.returncode == 2 and "unknown time zone" in result.stderr


def test_types_lists_every_category() -> None:
    out = run_cli("types").stdout
    for name in CATEGORIES:
        assert name in out
    assert set(DEFAULT_DROP) <= set(CATEGORIES)


def test_version() -> None:
    assert run_cli("--version").stdout.startswith("wechat-avatar ")
