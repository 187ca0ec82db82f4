"""Cache safety: prove the run wrote nothing into the portfolio's model cache.

A manifest maps every path under the cache (and the root itself, as ``.``) to its
``(size, mtime_ns)`` from ``lstat``: symlinks are recorded, never followed, and no
file is read, so a cache of thousands of files takes milliseconds. A directory's mtime
counts too: a file created and removed again during the run still shows as a change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from support.errors import ConfigError

Manifest = dict[str, tuple[int, int]]


def take(root: Path) -> Manifest:
    """Relative POSIX path -> (size, mtime_ns) of root and everything under it."""
    try:
        stat = os.lstat(root)
    except OSError as error:
        raise ConfigError(f"cannot read the model cache {root}: {error.strerror}") from None
    manifest: Manifest = {".": (stat.st_size, stat.st_mtime_ns)}
    pending = [(str(root), "")]
    while pending:
        directory, prefix = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # -- gone since the listing: the next manifest shows it
                relative = prefix + entry.name
                manifest[relative] = (stat.st_size, stat.st_mtime_ns)
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, relative + "/"))
    return manifest


@dataclass(frozen=True)
class CacheChanges:
    """What differs between two manifests of the cache at root (each list sorted)."""

    root: Path
    added: list[str]
    removed: list[str]
    modified: list[str]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.modified)

    def describe(self, limit: int = 10) -> str:
        """One line naming at most limit changed paths."""
        if not self:
            return f"the run left the model cache {self.root} unchanged"
        changes = ([("added", p) for p in self.added] + [("removed", p) for p in self.removed]
                   + [("modified", p) for p in self.modified])
        parts, verb = [], None
        for this_verb, path in changes[:limit]:
            parts.append(path if this_verb == verb else f"{this_verb} {path}")
            verb = this_verb
        more = len(changes) - limit
        suffix = f" (+{more} more)" if more > 0 else ""
        return f"the run changed the model cache {self.root}: {', '.join(parts)}{suffix}"


def compare(before: Manifest, after: Manifest, *, root: Path) -> CacheChanges:
    """The changes from manifest before to manifest after of the cache at root."""
    return CacheChanges(
        root=root,
        added=sorted(after.keys() - before.keys()),
        removed=sorted(before.keys() - after.keys()),
        modified=sorted(p for p in before.keys() & after.keys() if before[p] != after[p]),
    )
