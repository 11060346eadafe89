"""Every example in docs/config.md and in `pc3d config --help` runs: shell lines through
`pc3d.cli.main` in-process, YAML blocks resolved and checked (training sections parsed, model and
metrics built), Python blocks executed. A stale example fails here."""

from __future__ import annotations

import re
import shlex
import textwrap
from pathlib import Path

import pytest

from pc3d.cli import main
from pc3d.cli.config import EXAMPLES, check
from pc3d.config import ConfigError, load_config
from pc3d.engine.schema import parse_run_spec

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(DOC.read_text()) if lang == language]


def commands(text: str) -> list[list[str]]:
    lines = [line.strip() for line in text.splitlines()]
    return [shlex.split(line, comments=True) for line in lines if line.startswith("pc3d ")]


SHELL = [argv for body in blocks("bash") for argv in commands(body)]
HELP = commands(EXAMPLES)


@pytest.fixture(autouse=True)
def _in_a_scratch_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None) -> None:
    monkeypatch.chdir(tmp_path)


def test_the_examples_are_found():
    assert len(SHELL) >= 3 and len(HELP) >= 3
    assert len(blocks("yaml")) >= 5 and blocks("python")


@pytest.mark.parametrize("argv", SHELL + HELP, ids=[" ".join(a) for a in SHELL + HELP])
def test_shell_example_runs(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert argv[:2] == ["pc3d", "config"], f"docs examples here run `pc3d config` only: {argv}"
    status = main(argv[1:])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    if argv[2] == "show":
        # Overrides must name keys the engine accepts, not only keys YAML can hold.
        overrides = [a for a in argv[4:] if "=" in a]
        parse_run_spec(load_config(argv[3], overrides))


@pytest.mark.parametrize("index", range(len(blocks("yaml"))))
def test_yaml_example_resolves_and_builds(index: int, tmp_path: Path) -> None:
    text = blocks("yaml")[index]
    path = tmp_path / f"example_{index}.yaml"
    path.write_text(text)
    expected = re.match(r"# expect error: (.*)\n", text)
    if expected:
        with pytest.raises(ConfigError, match=re.escape(expected.group(1))):
            load_config(path)
        return
    check(load_config(path))


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_example_runs(index: int) -> None:
    exec(compile(textwrap.dedent(blocks("python")[index]), f"{DOC}:python-{index}", "exec"), {})


def test_a_stale_override_would_fail():
    with pytest.raises(ConfigError, match=r"train.lr \(from --set train.lr=0.002\): unknown key 'lr'"):
        parse_run_spec(load_config("pillar-center-tiny_kitti-mini-3class", ["train.lr=0.002"]))
