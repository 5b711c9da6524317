"""Code snapshots: a component's ``code`` folder, frozen by content when the job is submitted.

The files an ``.amlignore`` (or, failing that, a ``.gitignore``) excludes are left
out, as Azure ML does; ``.git`` and ``__pycache__`` always are. The snapshot is
committed to the content store once per distinct content, and each run works in
a fresh copy of it, so editing the source while a job runs changes nothing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from keel.artifacts import ArtifactStore
from keel.errors import InvalidInput
from keel.jobs.content import (
    MANIFEST,
    DigestCache,
    cas_path,
    commit,
    is_committed,
    local_copy,
    staging_folder,
    tree_digest,
)

_ALWAYS_SKIPPED = {
    ".git",
    "__pycache__",
    ".keel",
    ".ipynb_checkpoints",
    ".mypy_cache",
    ".pytest_cache",
}
MAX_SNAPSHOT_BYTES = 300 * 1024 * 1024  # Azure ML's limit for a code snapshot


def _ignore_rules(folder: Path):  # type: ignore[no-untyped-def]
    import pathspec

    for name in (".amlignore", ".gitignore"):
        rules = folder / name
        if rules.is_file():
            return pathspec.GitIgnoreSpec.from_lines(rules.read_text().splitlines())
    return None


def included_files(folder: Path) -> list[tuple[str, Path]]:
    """The files a snapshot of ``folder`` holds, by relative POSIX path."""
    rules = _ignore_rules(folder)
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        relative_dir = here.relative_to(folder).as_posix()
        kept = []
        for name in sorted(dirnames):
            rel = f"{relative_dir}/{name}" if relative_dir != "." else name
            if name in _ALWAYS_SKIPPED or (rules is not None and rules.match_file(rel + "/")):
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            rel = f"{relative_dir}/{name}" if relative_dir != "." else name
            path = here / name
            if path.is_file() and not (rules is not None and rules.match_file(rel)):
                found.append((rel, path))
    return found


def snapshot(folder: Path, artifacts: ArtifactStore, digests: DigestCache, scratch: Path) -> str:
    """Commit ``folder``'s included files to the content store; returns the snapshot digest."""
    files = included_files(folder)
    total = sum(path.stat().st_size for _, path in files)
    if total > MAX_SNAPSHOT_BYTES:
        raise InvalidInput(
            f"the code folder {folder} holds {total / 1e6:.0f} MB; snapshots are limited to 300 MB",
            hint="list data and outputs in an .amlignore file, or pass data as inputs",
        )
    known = digests.known(str(folder.resolve()))
    digest = "sha256:" + tree_digest([(rel, digests.file_hex(path.resolve(), known)) for rel, path in files])
    digests.save()
    if is_committed(artifacts, cas_path(digest)):
        return digest
    staged = staging_folder(artifacts, scratch)
    for rel, path in files:
        target = staged / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    commit(artifacts, staged, digest)
    return digest


def materialize(digest: str, artifacts: ArtifactStore, destination: Path, cache: Path) -> None:
    """A private, writable copy of a snapshot at ``destination``."""
    source = local_copy(artifacts, cas_path(digest), cache)
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns(MANIFEST), dirs_exist_ok=True)
