"""The documentation stays true: every CLI example in it parses, and every link points somewhere."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mongo_store import cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def examples() -> list[tuple[str, str]]:
    """(page, command line) for each ``zoho-mongo-store ...`` line in a shell block."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```sh\n(.*?)```", page.read_text(), flags=re.DOTALL):
            for line in block.splitlines():
                command = line.split("  #")[0].strip()
                command = re.sub(r"^(\w+=\S+\s+)+", "", command)  # VAR=value prefixes
                if command.startswith("zoho-mongo-store "):
                    for alternative in command.removeprefix("zoho-mongo-store ").split(" | "):
                        found.append((page.name, alternative))
    return found


@pytest.mark.parametrize("page, arguments", examples())
def test_every_documented_cli_example_parses(page: str, arguments: str) -> None:
    cli.parser().parse_args(shlex.split(arguments))


def test_there_are_examples_to_check() -> None:
    assert len(examples()) >= 15


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.name)
def test_every_relative_link_points_to_a_file(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
        assert (page.parent / target).exists(), f"{page.name} links to {target}"
