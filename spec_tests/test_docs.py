"""The user documentation (README.md, CONTRIBUTING.md, docs/*.md) stays true to the tree.

Docs rot silently when code moves: these specs fail when a relative link or an anchor points nowhere, a
repository path or a `vidtr_keras.x.y` name in backticks no longer exists, or a `vidtr` command line, a
`python -m reproduce NAME` or a `python -m benchmarks NAME` names a command, flag or run that is gone.
"""

import argparse
import importlib
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

ROOT = next(p for p in pathlib.Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])
PAGE_IDS = [str(p.relative_to(ROOT)) for p in PAGES]

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
SPAN = re.compile(r"`([^`\n]+)`")
REPO_PATH = re.compile(r"^(?:vidtr_keras|reproduce|benchmarks|spec_tests|results|docs|\.ci)/[\w./-]*$")
DOTTED = re.compile(r"\bvidtr_keras(?:\.[A-Za-z_]\w*)+")


def _text(page):
    return page.read_text(encoding="utf-8")


def _prose(text):
    """The page without its fenced code blocks (links and spans there are code, not markdown)."""
    return FENCE.sub("", text)


def _code_blocks(text):
    return FENCE.findall(text)


def _slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation other than - and _ dropped, spaces -> -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page):
    return {_slug(line.lstrip("#")) for line in _prose(_text(page)).splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_relative_link_points_to_an_existing_file_and_heading(page):
    broken = []
    for target in LINK.findall(_prose(_text(page))):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target} (no file {resolved.relative_to(ROOT) if ROOT in resolved.parents else resolved})")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target} (no heading with anchor #{anchor})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_repository_path_in_backticks_exists(page):
    missing = [
        span for span in SPAN.findall(_text(page)) if REPO_PATH.match(span) and not (ROOT / span.rstrip("/")).exists()
    ]
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


def _resolve(name):
    """The object a dotted `vidtr_keras...` name refers to: the longest importable module, then attributes."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name is not None and module_name.startswith(err.name):
                continue  # this prefix is not a module: try a shorter one
            raise
        break
    for attr in parts[i:]:
        obj = getattr(obj, attr)
    return obj


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_vidtr_keras_name_in_the_docs_exists(page):
    missing = []
    for name in sorted(set(DOTTED.findall(_text(page)))):
        try:
            _resolve(name)
        except (AttributeError, ModuleNotFoundError) as err:
            missing.append(f"{name} ({err})")
    assert not missing, f"{page.relative_to(ROOT)} names what the package does not have: {missing}"


def _vidtr_command_lines(text):
    """Every `vidtr ...` command line of the page: in bash blocks (continuations joined, comments and
    environment assignments dropped) and in inline code spans."""
    lines = []
    for block in _code_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            lines.extend(part.strip() for part in re.split(r"&&|\|", line))
    lines.extend(SPAN.findall(_prose(text)))
    commands = []
    for line in lines:
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            continue
        while tokens and re.match(r"^[A-Z_]+=", tokens[0]):
            tokens = tokens[1:]
        if len(tokens) >= 2 and os.path.basename(tokens[0]) == "vidtr":
            commands.append(tokens[1:])
    return commands


@pytest.fixture(scope="module")
def vidtr_commands():
    from vidtr_keras.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        name: {flag for action in sub._actions for flag in action.option_strings}
        for name, sub in subparsers.choices.items()
    }


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_vidtr_command_line_in_the_docs_parses(page, vidtr_commands):
    wrong = []
    for tokens in _vidtr_command_lines(_text(page)):
        command, args = tokens[0], tokens[1:]
        if command.startswith("-"):
            continue  # `vidtr --help`
        if command not in vidtr_commands:
            wrong.append(f"vidtr {command}: no such command")
            continue
        for token in args:
            flag = token.strip("[]").split("=")[0]
            if flag.startswith("--") and flag not in vidtr_commands[command]:
                wrong.append(f"vidtr {command} {flag}: no such flag")
    assert not wrong, f"{page.relative_to(ROOT)}: {wrong}"


def _run_names(program, text):
    return set(re.findall(rf"python -m {program} ([a-z_0-9]+)", text))


@pytest.mark.parametrize("program", ["reproduce", "benchmarks"])
def test_every_named_run_in_the_docs_exists(program):
    names = set().union(*(_run_names(program, _text(page)) for page in PAGES))
    if not names:
        pytest.skip(f"the docs name no `python -m {program} NAME`")
    env = {**os.environ, "KERAS_BACKEND": "numpy", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", program, "--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    unknown = sorted(name for name in names if not re.search(rf"\b{name}\b", result.stdout))
    assert not unknown, f"`python -m {program} --help` does not list {unknown}"
