"""Every `pc3d` command line the documentation shows is one the real parser accepts.

Sources: the fenced code blocks and inline code spans of docs/*.md and README.md, and the
description, epilog and argument help of every `pc3d` parser (core, nested and plugin commands).

Rules:

- A **full example** is a line of a fenced code block, or an indented line of a command's
  description or epilog (argparse's `examples:` layout; a prose line that happens to start with
  the word "pc3d" is not indented), that starts with `pc3d` (also `$ pc3d`, `.venv/bin/pc3d`,
  `python -m pc3d`, `torchrun ... -m pc3d`). Lines
  ending in `\\` are joined with the next; `# comments` are dropped; `&&`, `;` and `|` end a
  command, so `pc3d infer ... && pc3d kitti-eval ...` is two commands. A full example must get
  through `parse_args` of the real parser (nothing runs): right command, required arguments
  present, option names and choices valid. Placeholders such as `CONFIG` or `ROOT` standing
  for a value are fine there: argparse takes them as the value they stand for.
- A **synopsis** is a full example written with optional parts or alternatives: a token in
  `[...]`, or `a|b`. It cannot be parsed as it stands, so only its names are checked (below).
- An **inline reference** is a code span in prose (`` `pc3d test --json` ``): usually a part of a
  command line, so its names are checked; when it is concrete (it gives a positional argument
  after the command, is no synopsis and has no `...`, as `` `pc3d info scan.bin` ``) it must
  also parse whole.
- **Names check**: the command (and action, for `config show`, `data synth`, ...) exists and
  every `--option` written exists on that command. `a|b` in a command position checks each.
- Not commands: output lines (`pc3d train: error: ...`, the word after `pc3d` ends with `:`;
  in a block with `$ ` prompts, every line without one), and templates whose command is a
  placeholder (`pc3d COMMAND --help`).

A few full examples whose inputs ship in tests/data also run (`test_shipped_example_runs`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from pc3d.cli import build_parser, load_all_commands, main

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"^ *```[^\n]*\n(.*?)^ *```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"(?<!`)`((?:\.venv/bin/)?pc3d(?: [^`]*)?)`(?!`)")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$")
OPERATORS = {"&&", "||", ";", "|", "&"}


@dataclass(frozen=True)
class Example:
    where: str  # file:line, or "pc3d X --help"
    argv: tuple[str, ...]  # after `pc3d`
    kind: str  # "example" (parse it whole), "synopsis" or "reference" (see the rules above)

    @property
    def id(self) -> str:
        return f"{self.where}: pc3d {' '.join(self.argv)}"


def _split(text: str) -> list[list[str]]:
    """Shell words of `text`, one list per command (`&&`, `;`, `|` end a command); comments dropped."""
    # `|` is left in words (`auto|points` is an alternative); a pipe stands apart as its own word
    lexer = shlex.shlex(text, posix=True, punctuation_chars="&;")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in OPERATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def _after_pc3d(words: list[str]) -> list[str] | None:
    """The arguments a command line passes to pc3d, or None when it does not run pc3d."""
    if words and (words[0] == "pc3d" or words[0].endswith("/pc3d")):
        return words[1:]
    for i in range(len(words) - 1):
        if words[i] == "-m" and words[i + 1] == "pc3d":
            return words[i + 2 :]
    return None


def _is_synopsis(argv: list[str]) -> bool:
    return any(w.startswith("[") or w.endswith("]") and "[" not in w or _alternatives(w) for w in argv)


def _alternatives(word: str) -> bool:
    # `auto|points|boxes`, `show|list` (a quoted shell pipe in a value would not look like this)
    return bool(re.fullmatch(r"[\w.-]+(\|[\w.-]+)+", word))


def _examples_in(text: str, where: str, first_line: int = 1, indented_only: bool = False) -> list[Example]:
    """Full examples and synopses: lines of `text` starting with a pc3d command (joined over `\\`).

    Args:
        text: A code block's body or a help text.
        where: The file (or help) it comes from; `first_line` is the line number of its first line.
        indented_only: Only lines starting with whitespace count (help texts).
    """
    found: list[Example] = []
    lines = text.splitlines()
    prompted = any(re.match(r"\s*\$\s", line) for line in lines)
    i = 0
    while i < len(lines):
        start, line = i, lines[i].strip()
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + " " + lines[i].strip()
        i += 1
        if indented_only and not lines[start][:1].isspace():
            continue
        if prompted and not line.startswith("$"):
            continue  # output of the prompted commands
        line = re.sub(r"^\$\s+", "", line)
        if not re.match(r"^(\S*/)?pc3d(\s|$)|^(python3?|torchrun)\s.*-m pc3d\s", line):
            continue
        try:
            commands = _split(line)
        except ValueError:  # unbalanced quotes: prose, not a command
            continue
        for words in commands:
            argv = _after_pc3d(words)
            if argv is None or _not_a_command(argv):
                continue
            kind = "synopsis" if _is_synopsis(argv) else "example"
            found.append(Example(f"{where}:{first_line + start}", tuple(argv), kind))
    return found


def _references_in(text: str, where: str) -> list[Example]:
    """Inline code spans naming a pc3d command (`pc3d` alone is no command line)."""
    found = []
    for match in INLINE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        try:
            commands = _split(match.group(1))
        except ValueError:
            continue
        argv = _after_pc3d(commands[0]) if commands else None
        if argv and not _not_a_command(argv):
            found.append(Example(f"{where}:{line}", tuple(argv), "reference"))
    return found


def _not_a_command(argv: list[str]) -> bool:
    """Output (`pc3d train: error: ...`) or a template (`pc3d COMMAND --help`)."""
    return bool(argv) and (argv[0].endswith(":") or bool(PLACEHOLDER.match(argv[0])))


def _walk(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += _walk(sub)
    return found


def _help_texts(parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """The description and epilog (examples and references), and the arguments' help (references)."""
    prose = [a.help or "" for a in parser._actions if a.help is not argparse.SUPPRESS]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            prose += [c.help or "" for c in action._choices_actions]
    return [parser.description or "", parser.epilog or ""], prose


def _full_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    load_all_commands(parser)
    return parser


def _collect() -> tuple[list[Example], list[Example]]:
    docs: list[Example] = []
    for path in DOCS:
        text = path.read_text()
        where = str(path.relative_to(ROOT))
        for block in FENCE.finditer(text):
            docs += _examples_in(block.group(1), where, text.count("\n", 0, block.start(1)) + 1)
        docs += _references_in(FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text), where)
    helps: list[Example] = []
    for sub in _walk(_full_parser()):
        texts, prose = _help_texts(sub)
        found = [e for t in texts for e in _examples_in(t, "", indented_only=True)]
        found += [e for t in texts + prose for e in _references_in(t, "")]
        helps += [Example(f"{sub.prog} --help", e.argv, e.kind) for e in found]
    return docs, helps


DOC_EXAMPLES, HELP_EXAMPLES = _collect()
ALL = DOC_EXAMPLES + HELP_EXAMPLES


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return _full_parser()


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[int, str]:
    """argparse's exit status (0: parsed) and what it printed to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit as exit:
            return int(exit.code or 0), err.getvalue()
    return 0, ""


def _command(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The (sub-)parser the leading words of `argv` choose, and the words after them."""
    while argv:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or argv[0] not in sub.choices:
            break
        if hasattr(sub, "build") and argv[0] in getattr(sub, "declared", {}):
            sub.build(argv[0])
        parser, argv = sub.choices[argv[0]], argv[1:]
    return parser, argv


def _names_problem(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """What in `argv` names no command or option of `parser`, or None."""
    heads = [w for w in argv[:1] if _alternatives(w)]
    variants = [[alt, *argv[1:]] for alt in heads[0].split("|")] if heads else [argv]
    for words in variants:
        # a second-level alternative (`pc3d det2d shapes|kitti`)
        if len(words) > 1 and _alternatives(words[1]):
            problems = [_names_problem(parser, [words[0], alt, *words[2:]]) for alt in words[1].split("|")]
            if any(problems):
                return next(p for p in problems if p)
            continue
        command, rest = _command(parser, list(words))
        if command is parser and words and not words[0].startswith("-"):
            return f"no command {words[0]!r}"
        sub = next((a for a in command._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is not None and rest and not rest[0].startswith("-") and rest[0] != "...":
            if not _alternatives(rest[0]) and not PLACEHOLDER.match(rest[0]):
                return f"{command.prog}: no action {rest[0]!r}"
        options = set(command._option_string_actions)
        for word in rest:
            name = word.strip("[]").split("=", 1)[0]
            if name.startswith("--") and name not in options:
                return f"{command.prog}: no option {name}"
    return None


def _concrete(parser: argparse.ArgumentParser, example: Example) -> bool:
    """Whether an inline reference is a whole command line (see the rules above)."""
    if _is_synopsis(list(example.argv)) or "..." in example.argv:
        return False
    _, rest = _command(parser, list(example.argv))
    return any(not w.startswith("-") for w in rest)


def _parsed_whole(parser: argparse.ArgumentParser) -> list[Example]:
    return [e for e in ALL if e.kind == "example" or e.kind == "reference" and _concrete(parser, e)]


PARSED = _parsed_whole(_full_parser())


def test_examples_are_found():
    assert len([e for e in DOC_EXAMPLES if e.kind == "example"]) >= 60
    assert len([e for e in HELP_EXAMPLES if e.kind == "example"]) >= 20
    assert len([e for e in PARSED if e.kind == "reference"]) >= 5
    # every kind of source is read: code blocks, continuations, inline spans, help epilogs
    assert any(e.where.startswith("docs/cli.md") and e.kind == "reference" for e in ALL)
    assert any(e.argv[:1] == ("kitti-eval",) and e.where.startswith("pc3d infer") for e in HELP_EXAMPLES)
    assert any(e.argv[:2] == ("config", "show") and e.where == "pc3d config --help" for e in HELP_EXAMPLES)
    assert any("schedule.epochs=1" in e.argv and e.where.startswith("docs/centerpoint.md") for e in ALL)


def test_the_rules_sort_lines_as_documented():
    found = _examples_in(
        "pc3d train a.yaml \\\n    --set x=1 # go\npc3d infer C K s.bin --out-dir o && pc3d plot w\n"
        "pc3d train: error: no\npc3d COMMAND --help\npc3d info FILE [--what auto|points|boxes]\n"
        "torchrun --nproc_per_node 2 -m pc3d train CONFIG\n",
        "x.md",
        10,
    )
    assert [(e.where, e.argv, e.kind) for e in found] == [
        ("x.md:10", ("train", "a.yaml", "--set", "x=1"), "example"),
        ("x.md:12", ("infer", "C", "K", "s.bin", "--out-dir", "o"), "example"),
        ("x.md:12", ("plot", "w"), "example"),
        ("x.md:15", ("info", "FILE", "[--what", "auto|points|boxes]"), "synopsis"),
        ("x.md:16", ("train", "CONFIG"), "example"),
    ]
    prompted = _examples_in("$ pc3d plugins\npc3d 0.1.0  [pc3d.nn.plugin = pc3d.nn.plugin]\n", "x.md")
    assert [e.argv for e in prompted] == [("plugins",)]
    help_text = "Prose that wraps onto a line starting\npc3d or another word.\n\nexamples:\n  pc3d plot w\n"
    assert [e.argv for e in _examples_in(help_text, "", indented_only=True)] == [("plot", "w")]
    spans = _references_in("Run `pc3d info scan.bin`, see `pc3d test --json` and `pc3d`.", "x.md")
    assert [e.argv for e in spans] == [("info", "scan.bin"), ("test", "--json")]


@pytest.mark.parametrize("example", PARSED, ids=lambda e: e.id)
def test_example_parses(example: Example, parser: argparse.ArgumentParser) -> None:
    status, err = _parse(parser, list(example.argv))
    assert status == 0, f"{example.id}\n{err.strip()}"


@pytest.mark.parametrize("example", ALL, ids=lambda e: e.id)
def test_example_names_real_commands_and_options(example: Example, parser: argparse.ArgumentParser) -> None:
    problem = _names_problem(parser, list(example.argv))
    assert problem is None, f"{example.id}: {problem}"


def test_a_stale_example_is_caught(parser: argparse.ArgumentParser) -> None:
    assert _parse(parser, ["demo", "--root", "tests/data/kitti"])[0] == 2
    assert _parse(parser, ["convert", "in.json", "out.json"])[0] == 2  # --dst missing
    assert _names_problem(parser, ["kitti-boxes", "--outdir", "x"]) == "pc3d kitti-boxes: no option --outdir"
    assert _names_problem(parser, ["config", "print"]) == "pc3d config: no action 'print'"
    assert _names_problem(parser, ["boxes"]) == "no command 'boxes'"
    assert _names_problem(parser, ["det2d", "shapes|coco"]) == "pc3d det2d: no action 'coco'"


# Full examples whose inputs ship with pc3d (tests/data) and that run in a second or so.
CHEAP = {"info", "convert", "kitti-boxes", "kitti-eval", "config"}
SHIPPED = [
    e
    for e in DOC_EXAMPLES
    if e.kind == "example" and e.argv[0] in CHEAP and any(a.startswith("tests/data/") for a in e.argv)
]


@pytest.mark.parametrize("example", SHIPPED, ids=lambda e: e.id)
def test_shipped_example_runs(
    example: Example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None
) -> None:
    # Inputs are read from the repository, outputs written to a scratch folder.
    argv = [str(ROOT / a) if a.startswith("tests/data/") else a for a in example.argv]
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 0, example.id


def test_some_shipped_examples_run():
    assert len(SHIPPED) >= 3, "docs should show commands on the files in tests/data"
