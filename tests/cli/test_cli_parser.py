"""The `pc3d` parser: honest help everywhere, consistent names, lazy commands, plugin commands."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from pc3d.cli import CORE_COMMANDS, build_parser, declared_help, load_all_commands, main
from pc3d.cli.arguments import CONFIG_HELP, DEVICES, KITTI_ROOT_HELP, NAN_POLICIES, OVERRIDES_HELP

KITTI = Path(__file__).resolve().parents[1] / "data" / "kitti" / "training"
SCAN = KITTI / "velodyne" / "000001.bin"


def _walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """`parser` and every sub-parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _walk(sub)


@pytest.fixture(scope="module")
def full_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    load_all_commands(parser)
    return parser


def test_every_command_and_argument_has_help(full_parser: argparse.ArgumentParser) -> None:
    parsers = list(_walk(full_parser))
    progs = {p.prog for p in parsers}
    assert {f"pc3d {c.name}" for c in CORE_COMMANDS} <= progs
    assert {
        "pc3d det2d",
        "pc3d det2d shapes",
        "pc3d det2d kitti",
        "pc3d config show",
    } <= progs  # plugin, nested
    for parser in parsers:
        description = (parser.description or "").strip()
        assert description, f"{parser.prog} has no description"
        assert not description.startswith("`"), f"{parser.prog}: {description[:40]!r}"
        assert description.endswith("."), f"{parser.prog}: the description is not a sentence: {description!r}"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert (choice.help or "").strip(), f"{parser.prog} {choice.dest} has no summary"
                    assert not choice.help.startswith("`")
            else:
                assert (action.help or "").strip(), (
                    f"{parser.prog} {action.option_strings or action.dest} has no help"
                )


def test_the_same_input_has_the_same_name_everywhere(full_parser: argparse.ArgumentParser) -> None:
    seen: dict[str, set[str]] = {}
    for parser in _walk(full_parser):
        for action in parser._actions:
            for option in action.option_strings if action.nargs != 0 else ():  # options taking a value
                seen.setdefault(option, set()).add(str(action.metavar))
    for option in ("--calib", "--num-features", "--frame", "--kitti", "--json", "--what", "--image"):
        assert len(seen[option]) == 1, (option, seen[option])
    commands = {p.prog: p for p in _walk(full_parser)}
    positional = {
        prog: [a.metavar for a in p._actions if not a.option_strings and a.metavar]
        for prog, p in commands.items()
    }
    assert positional["pc3d show"] == ["CLOUD"]
    assert positional["pc3d convert"] == ["INPUT", "OUTPUT"]
    assert positional["pc3d checkpoint convert"] == ["INPUT", "OUTPUT"]
    assert positional["pc3d info"] == ["FILE"]
    assert positional["pc3d data synth"] == ["DIR"]
    assert positional["pc3d det2d shapes"] == ["DIR"]
    assert positional["pc3d det2d kitti"] == ["ROOT", "DIR", "ID"]
    # Both commands that take a .npy apply the same rule, and say so.
    for prog in ("pc3d info", "pc3d convert"):
        assert "fewer than 7 columns is a point cloud" in " ".join((commands[prog].epilog or "").split())


def _shown(action: argparse.Action) -> str:
    """How `--help` shows the value an argument takes: its metavar, or its choices."""
    if action.metavar is not None:
        return action.metavar if isinstance(action.metavar, str) else " ".join(action.metavar)
    if action.choices is not None:
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return action.dest.upper() if action.option_strings else action.dest


def _thing(action: argparse.Action) -> str:
    """What an argument names: its dest, singular for a list (CLOUD [CLOUD ...] are clouds)."""
    many = action.nargs in ("+", "*") and action.dest.endswith("s")
    return action.dest[:-1] if many else action.dest


# Names that mean different things in different commands, and the words each may use.
DIFFERENT_MEANINGS = {
    "out": {"FILE", "PNG"},  # a picture (show, plot) or another file (kitti-boxes, data gt-database)
    "split": {"NAME", "IDS_TXT"},  # a split's name (det2d) or a file of frame ids (kitti-eval)
}
# How the help of an argument starts wherever a command takes it.
SHARED_HELP = {
    "config": CONFIG_HELP,
    "kitti": KITTI_ROOT_HELP,
    "override": OVERRIDES_HELP,
    "device": "where to ",
    "nan_policy": "points with NaN/inf coordinates: drop them with a warning (default) or fail",
}
# Arguments allowed their own words (none at present).
OWN_WORDS: set[tuple[str, str]] = set()


def test_the_same_argument_reads_the_same_in_every_command(full_parser: argparse.ArgumentParser) -> None:
    shown: dict[str, dict[str, str]] = {}  # thing -> command -> how its value is shown
    for parser in _walk(full_parser):
        for action in parser._actions:
            if action.nargs == 0 or isinstance(action, argparse._SubParsersAction):
                continue  # flags and sub-commands take no value
            help_text = action.help or ""
            # One style: a lowercase phrase (or a word in capitals: KITTI, CLOUD), no final period.
            first = help_text.split()[0]
            assert first[0].islower() or not first[0].isalpha() or first.isupper(), (parser.prog, help_text)
            assert not help_text.endswith("."), (parser.prog, help_text)
            if (parser.prog, action.dest) in OWN_WORDS:
                continue
            thing = _thing(action)
            shown.setdefault(thing, {})[parser.prog] = _shown(action)
            if thing in SHARED_HELP:
                assert help_text.startswith(SHARED_HELP[thing]), (parser.prog, thing, help_text)
    for thing, by_command in shown.items():
        words = set(by_command.values())
        assert len(words) == 1 or words <= DIFFERENT_MEANINGS.get(thing, set()), (thing, by_command)
    # The arguments the shared helpers add, in every command that reads such a thing.
    nan_policy = "{" + ",".join(NAN_POLICIES) + "}"
    for prog in ("pc3d convert", "pc3d show", "pc3d kitti-boxes", "pc3d infer"):
        assert shown["nan_policy"][prog] == nan_policy, prog
    for prog in ("pc3d train", "pc3d test", "pc3d infer"):
        assert shown["device"][prog] == "{" + ",".join(DEVICES) + "}", prog
    assert set(shown["kitti"]) == {"pc3d show", "pc3d kitti-boxes", "pc3d det2d kitti"}
    assert set(shown["work_dir"].values()) == {"WORK_DIR"} and len(shown["work_dir"]) == 3
    assert set(shown["frame"]) >= {"pc3d show", "pc3d kitti-boxes", "pc3d det2d kitti"}


def test_det2d_kitti_takes_a_kitti_root_as_show_and_kitti_boxes_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    # The KITTI object root (holding training/) and its training/ folder itself, as --kitti ROOT.
    for root in (KITTI.parent, KITTI):
        out = tmp_path / root.name
        assert main(["det2d", "kitti", str(root), str(out), "000004"]) == 0
        written = json.loads((out / "annotations" / "train.json").read_text())
        assert len(written["images"]) == 1 and len(written["annotations"]) == 2
        assert (
            main(["kitti-boxes", "--kitti", str(root), "--frame", "000004", "--out", str(out / "b.json")])
            == 0
        )
    capsys.readouterr()
    assert main(["det2d", "kitti", str(tmp_path / "nowhere"), str(tmp_path / "o"), "000004"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pc3d det2d: error: kitti_root {tmp_path / 'nowhere'} is not a folder")


def test_top_level_help_lists_every_command_in_full_sentences(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "pc3d: 3D point-cloud detection and coordinate toolkit." in out
    assert "register(subparsers)" not in out  # no implementation notes
    for command in CORE_COMMANDS:
        assert f"    {command.name}" in out and command.summary.split()[0] in out
    assert "det2d" in out and "pc3d-det2d plugin" in out
    # Every line says what the command does (a plugin command's with the help its module gives).
    listing = " ".join(out.split())
    assert (
        "det2d write COCO-format 2D detection data sets: synthetic shapes or KITTI images (pc3d-det2d plugin)"
        in listing
    )
    assert "a command of the" not in listing and "main job" not in listing


def _imported_modules(*argv: str) -> set[str]:
    """Modules a `python -m pc3d ARGV` process imports (from `-X importtime`)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pc3d", *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {
        line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")
    }


def _plugin_packages() -> set[str]:
    groups = ("pc3d", "pc3d.commands")
    return {ep.value.split(":")[0].split(".")[0] for group in groups for ep in entry_points(group=group)}


def _heavy(modules: set[str]) -> set[str]:
    roots = {"torch", "open3d", "pluggy", *_plugin_packages()}
    return {m for m in modules if m.split(".")[0] in roots}


def test_help_imports_no_torch_open3d_or_plugin() -> None:
    assert "pc3d_det2d" in _plugin_packages()
    modules = _imported_modules("--help")
    assert _heavy(modules) == set()
    # Commands are declared, not built: no command module is imported for the listing.
    assert {m for m in modules if m.startswith("pc3d.cli.")} == set()
    assert "numpy" not in modules


def test_light_commands_import_no_torch(tmp_path: Path) -> None:
    assert _heavy(_imported_modules("info", str(SCAN))) == set()
    assert (
        _heavy(
            _imported_modules(
                "convert", "--src", "lidar", "--dst", "lidar", str(SCAN), str(tmp_path / "scan.ply")
            )
        )
        == set()
    )
    assert _heavy(_imported_modules("show", "--help")) == set()
    # A change of coordinate system too, with a real calibration, for points and for boxes.
    calib = str(KITTI / "calib" / "000001.txt")
    to_camera = ["--src", "lidar", "--dst", "camera", "--calib", calib]
    assert _heavy(_imported_modules("convert", *to_camera, str(SCAN), str(tmp_path / "cam.npy"))) == set()
    labels = ["convert", "--src", "camera", "--dst", "lidar", "--calib", calib]
    boxes = [str(KITTI / "label_2" / "000001.txt"), str(tmp_path / "boxes.json")]
    assert _heavy(_imported_modules(*labels, *boxes)) == set()


# ------------------------------------------------------------------------------ plugin commands

PLUGIN_SOURCE = """
import sys

def add_hello(subparsers):
    parser = subparsers.add_parser("hello", description="Say hello.")
    parser.add_argument("who", help="whom to greet")
    parser.set_defaults(func=lambda args: print(f"hello {args.who}") or 0)

def add_nothing(subparsers):
    pass

def add_described(subparsers):
    parser = subparsers.add_parser("described", help="say hello, described", description="Say hello.")
    parser.set_defaults(func=lambda args: 0)
"""


@pytest.fixture()
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`make(dist, commands)`: an installed distribution declaring `pc3d.commands` entry points."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def make(dist: str, commands: dict[str, str], source: str = PLUGIN_SOURCE) -> str:
        module = f"fake_cli_plugin_{dist.replace('-', '_')}"
        (site / f"{module}.py").write_text(source)
        info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        lines = ["[pc3d.commands]", *(f"{name} = {module}:{func}" for name, func in commands.items())]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        return module

    return make


def test_plugin_command_is_listed_without_import_and_runs(
    fake_site, capsys: pytest.CaptureFixture[str]
) -> None:
    module = fake_site("hello-plugin", {"hello": "add_hello"})
    with pytest.raises(SystemExit):
        main(["--help"])
    assert re.search(r"hello\s+a command of the hello-plugin plugin", capsys.readouterr().out)
    assert module not in sys.modules
    # With a literal help in its add_parser call, that is the summary, read without importing.
    fake_site("described-plugin", {"described": "add_described"})
    with pytest.raises(SystemExit):
        main(["--help"])
    assert re.search(r"described\s+say hello, described \(described-plugin plugin\)", capsys.readouterr().out)
    assert not [m for m in sys.modules if m.startswith("fake_cli_plugin_described")]
    assert (
        declared_help("fake_cli_plugin_described_plugin:add_described", "described") == "say hello, described"
    )
    assert declared_help("no_such_module_anywhere:add", "x") is None
    assert main(["hello", "world"]) == 0
    assert capsys.readouterr().out == "hello world\n"
    assert module in sys.modules


def test_plugin_command_problems_are_one_line_errors(fake_site, capsys: pytest.CaptureFixture[str]) -> None:
    fake_site("first-plugin", {"twice": "add_hello", "empty": "add_nothing", "broken": "no_such_function"})
    fake_site("second-plugin", {"twice": "add_hello"})
    assert main(["twice"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pc3d twice: error: two plugins declare the command 'twice'" in err
    assert "first-plugin" in err and "second-plugin" in err
    assert main(["empty"]) == 2
    assert "added no parser named 'empty'" in capsys.readouterr().err
    assert main(["broken"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("pc3d broken: error: command 'broken' of first-plugin could not be loaded")
        and err.count("\n") == 1
    )
    # A plugin cannot take over a core command: it is ignored, with a warning line.
    fake_site("clash-plugin", {"info": "add_hello"})
    with pytest.raises(SystemExit):
        main(["--help"])
    err = capsys.readouterr().err
    assert "pc3d: warning: plugin clash-plugin declares the command 'info', a core command; ignored" in err
    assert main(["info", str(SCAN)]) == 0
    assert "points  120,268" in capsys.readouterr().out


def test_core_commands_skip_the_plugin_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    import pc3d.cli

    def fail() -> None:
        raise AssertionError("plugin commands looked up for a core command")

    monkeypatch.setattr(pc3d.cli, "plugin_commands", fail)
    parser = build_parser(["info", str(SCAN)])
    assert parser.parse_args(["info", str(SCAN)]).file == SCAN


def test_every_set_option_adds_up_when_repeated(full_parser: argparse.ArgumentParser) -> None:
    commands = []
    for parser in _walk(full_parser):
        for action in parser._actions:
            if "--set" in action.option_strings:
                commands.append(parser.prog.split()[1:])
                assert isinstance(action, argparse._ExtendAction), parser.prog  # not "last one wins"
    assert ["demo"] in commands and ["train"] in commands and ["data", "gt-database"] in commands
    for command in (["demo"], ["train", "CONFIG"], ["data", "gt-database", "CONFIG"]):
        args = full_parser.parse_args([*command, "--set", "a=1", "b=2", "--set", "c=3"])
        assert args.overrides == ["a=1", "b=2", "c=3"], command


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["infr", "x"],
            "pc3d: error: unknown command 'infr' (did you mean 'infer'?); 'pc3d --help' lists them",
        ),
        (
            ["show", "--viw", "bev", "x.bin"],
            "pc3d show: error: unrecognized arguments: --viw x.bin (did you mean '--view'?); "
            "'pc3d show --help' lists them",
        ),
        (
            ["data", "synth", "out", "--scenez=3"],
            "pc3d data synth: error: unrecognized arguments: --scenez=3 (did you mean '--scenes'?)",
        ),
        (
            ["info", "a.bin", "b.bin"],
            "pc3d info: error: unrecognized arguments: b.bin; 'pc3d info --help' lists them",
        ),
    ],
)
def test_usage_errors_name_the_command_and_what_was_meant(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err
