"""Content-addressed store of raw mail and attachment bytes, durable before any commit."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path


RECENT_SECONDS = 60.0  # a file written this recently may still lack its directory's fsync


class ArchiveError(OSError):
    """The archive cannot take a file (disk full, permissions): the caller must not commit."""


class MailArchive:
    """Files named by their sha256 under `root/ab/cd/<hash>`; writing the same bytes twice is free."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        """Store bytes durably and return their sha256 hex digest.

        The file is written to a temporary name, fsync'ed, renamed into place and its
        directory fsync'ed, so that after put() returns a crash cannot lose it.
        """
        digest = hashlib.sha256(data).hexdigest()
        final = self._path(digest)
        try:
            written = final.stat().st_mtime
        except FileNotFoundError:
            written = None
        if written is not None:
            # one just renamed into place by another worker may await its directory fsync: make
            # sure the name is on disk before a commit refers to it (an older one long is)
            if time.time() - written < RECENT_SECONDS:
                fsync_dir(final.parent)
            return digest
        try:
            write_atomic(final, data)
        except OSError as exc:
            raise ArchiveError(exc.errno, f"mail archive cannot store {digest}: {exc.strerror}") from exc
        return digest

    def get(self, digest: str) -> bytes:
        if not (len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise KeyError(digest)
        try:
            return self._path(digest).read_bytes()
        except FileNotFoundError as exc:
            raise KeyError(digest) from exc

    def has(self, digest: str) -> bool:
        return self._path(digest).exists()

    def delete(self, digest: str) -> None:
        self._path(digest).unlink(missing_ok=True)

    def digests(self) -> list[str]:
        return sorted(p.name for p in self.root.glob("??/??/*") if not p.name.startswith("."))

    def check_writable(self) -> None:
        """Raise ArchiveError when the archive cannot take files (for health checks)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                pass
        except OSError as exc:
            raise ArchiveError(exc.errno, f"mail archive {self.root} is not writable: {exc.strerror}") from exc


def write_atomic(path: Path, content: bytes | Path) -> None:
    """Bytes, or a file's content, written under a temporary name, fsync'ed, renamed, directory fsync'ed."""
    make_dirs_durably(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(content, Path):
                with content.open("rb") as source:
                    shutil.copyfileobj(source, fh, 1 << 20)
            else:
                fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def make_dirs_durably(path: Path) -> None:
    """mkdir -p, each new folder's entry fsync'ed in its parent, so a power loss cannot drop the folder."""
    if path.is_dir():
        return
    make_dirs_durably(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        pass  # made meanwhile by another worker, whose fsync may not have happened yet
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
