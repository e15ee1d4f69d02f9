"""The operator's HANDOFF.md log (seed: ``agents/HANDOFF.md``): append an entry, read entries.

An entry is the seed's format, newest last::

    ## [2026-12-02] [sniper] Handoff
    - **Did:** ...
    - **Next:** ...
    - **Blockers:** ...
    - **Deploy:** ...

The same file is a HARDSTOP source (``hardstop.handoff_says_hardstop``): any line that starts
with ``HARDSTOP`` halts trading. So an entry must never be readable as such a line: every field
is one line of text (no character that ``str.splitlines`` treats as a line end, no control
characters), each line of an entry starts with ``## `` or ``- **``, the entry always starts on a
line of its own, and the rendered entry is checked with the watcher's own parser before it is
written. An entry that mentions HARDSTOP is fine; one that would raise it is refused.

Appending never truncates: the file is opened in append mode (created with a title when it is
missing), locked, and the entry goes out in one write, then fsync.
"""

from __future__ import annotations

import fcntl
import os
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from nettrace.execution.hardstop import hardstop_line

TITLE = "# HANDOFF\n"
#: (field, label) in the order the seed writes them.
FIELDS: tuple[tuple[str, str], ...] = (
    ("did", "Did"),
    ("next", "Next"),
    ("blockers", "Blockers"),
    ("deploy", "Deploy"),
)
MAX_FIELD_CHARS = 4000
MAX_AGENT_CHARS = 80
HEADING = re.compile(r"^## \[(\d{4}-\d{2}-\d{2})\] \[([^\[\]]+)\] Handoff[ \t]*$")


class HandoffError(ValueError):
    """An entry that cannot be written, or a log that cannot be read (one line)."""


def _one_line(name: str, value: str, limit: int) -> str:
    text = value.strip()
    if not text:
        raise HandoffError(f"--{name} is empty: say what (write 'none' if there is nothing)")
    for char in text:
        # Cc: control characters (\n, \r, \v, \f, \x1c-\x1e, \x85, ...); Zl/Zp: U+2028/U+2029.
        # splitlines ends a line at each of the line-breaking ones, so any of them could start
        # a line that reads as HARDSTOP.
        if unicodedata.category(char) in {"Cc", "Zl", "Zp"}:
            raise HandoffError(
                f"--{name} must be one line of text (it holds {char!r}); "
                "a new line could be read as a HARDSTOP line"
            )
    if len(text) > limit:
        raise HandoffError(f"--{name} is {len(text)} characters, more than {limit}")
    return text


@dataclass(frozen=True, slots=True)
class HandoffEntry:
    """One validated entry; build it with ``HandoffEntry.create``."""

    day: date
    agent: str
    did: str
    next: str
    blockers: str
    deploy: str

    @classmethod
    def create(
        cls, *, day: date, agent: str, did: str, next: str, blockers: str, deploy: str
    ) -> HandoffEntry:
        name = _one_line("agent", agent, MAX_AGENT_CHARS)
        if "[" in name or "]" in name:
            raise HandoffError(f"--agent {name!r} may not contain [ or ]")
        entry = cls(
            day=day,
            agent=name,
            did=_one_line("did", did, MAX_FIELD_CHARS),
            next=_one_line("next", next, MAX_FIELD_CHARS),
            blockers=_one_line("blockers", blockers, MAX_FIELD_CHARS),
            deploy=_one_line("deploy", deploy, MAX_FIELD_CHARS),
        )
        line = hardstop_line(entry.render())
        if line is not None:  # pragma: no cover - the checks above make this unreachable
            raise HandoffError(f"the entry would read as a HARDSTOP line: {line!r}")
        return entry

    @property
    def heading(self) -> str:
        return f"## [{self.day.isoformat()}] [{self.agent}] Handoff"

    def render(self) -> str:
        """The entry as written: heading and four bullets, each line ending in a newline."""
        lines = [self.heading]
        lines += [f"- **{label}:** {getattr(self, name)}" for name, label in FIELDS]
        return "\n".join(lines) + "\n"


def append_entry(path: Path, entry: HandoffEntry) -> None:
    """Append ``entry`` to ``path`` (created with a title if missing); never truncates."""
    if not path.parent.is_dir():
        raise HandoffError(
            f"folder {path.parent} does not exist (run from the checkout or set "
            "NETTRACE_HANDOFF_PATH)"
        )
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise HandoffError(f"cannot open {path} for appending: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another `handoff add` waits; released on close
        size = os.fstat(fd).st_size
        if size == 0:
            prefix = TITLE + "\n"
        else:
            tail = os.pread(fd, 2, max(size - 2, 0))
            # One blank line before the heading, and never a partial last line to join.
            prefix = "" if tail.endswith(b"\n\n") else "\n" if tail.endswith(b"\n") else "\n\n"
        data = (prefix + entry.render()).encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        raise HandoffError(f"cannot append to {path}: {exc}") from None
    finally:
        os.close(fd)


def read_entries(path: Path) -> list[str]:
    """Every entry in ``path``, oldest first, each as its text (heading to the next heading)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise HandoffError(
            f"{path} does not exist (add an entry with `nettrace handoff add`)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HandoffError(f"{path} is unreadable: {exc}") from None
    entries: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if HEADING.match(line):
            current = [line]
            entries.append(current)
        elif line.startswith(("# ", "## ")):
            current = None  # another section (hand-written) ends the entry
        elif current is not None:
            current.append(line)
    return ["\n".join(lines).rstrip() + "\n" for lines in entries]
