"""Writing files safely: check the destination before any work, write under a temporary name, rename at the end.

Every writer of the package (``.h5ad`` results, metrics JSON, model bundles, zarr results, the napari writer)
goes through :func:`check_writable` and :func:`atomic_path`: a folder that is missing and cannot be created, a
read-only folder or a full disk becomes one :class:`~napari_spatial_impute.errors.InputError` naming the path;
an error or an interruption (Ctrl-C) removes the partial output, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError

#: suffix of the temporary name a file or folder is written under
PARTIAL = ".partial"


def _nearest_existing(path: Path) -> Path:
    p = path.parent if str(path.parent) else Path(".")
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable(path: str | Path, what: str = "output", *, folder: bool = False) -> Path:
    """Refuse (before any work) an output path whose folder cannot be created or written to; a file output
    (``folder=False``) must not name an existing folder."""
    path = Path(path)
    if path.is_dir() and not folder:
        raise InputError(f"The {what} {path} is a folder.", "give a file name.")
    parent = _nearest_existing(path)
    if not parent.is_dir():
        raise InputError(f"Cannot write the {what} {path}: {parent} is a file, not a folder.",
                         "choose a path inside a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"Cannot write the {what} {path}: the folder {parent} is read-only.",
                         "choose a folder you can write to.")
    return path


def remove(path: Path) -> None:
    """Delete a file or folder if present (never raises)."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except OSError:
        pass


def os_error(err: OSError, path: Path, what: str = "output") -> InputError:
    """An OSError while writing ``path`` as the one clear message (permission, missing folder, full disk)."""
    reason = err.strerror or str(err) or type(err).__name__
    if "error message = '" in str(err):  # h5py: "Unable to create file (… error message = 'No such file …')"
        reason = str(err).split("error message = '", 1)[1].split("'", 1)[0]
    if isinstance(err, PermissionError) or "ermission denied" in str(err):
        reason = "permission denied (read-only folder?)"
    return InputError(f"Could not write the {what} {path}: {reason}; nothing was written.",
                      "choose a writable folder with enough free space.")


class AtomicTarget:
    """An output written under a temporary sibling name (``<name>.partial``, :attr:`tmp`): :meth:`commit` renames
    it to ``path``, :meth:`discard` removes it. For writers that outlive one ``with`` block (a zarr result filled
    block by block); :func:`atomic_path` is the ``with`` form. OSErrors become :class:`InputError`."""

    def __init__(self, path: str | Path, what: str = "output", *, overwrite: bool = True, folder: bool = False):
        self.path, self.what = Path(path), what
        if self.path.exists() and not overwrite:
            raise InputError(f"{self.path} already exists.", "choose another output path or pass --overwrite.")
        check_writable(self.path, what, folder=folder)
        self.tmp = self.path.with_name(self.path.name + PARTIAL)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise os_error(err, self.path, what) from err
        remove(self.tmp)

    def commit(self) -> Path:
        """Move the finished output into place (a folder replaces what is there)."""
        try:
            if not self.tmp.exists():
                raise InputError(f"Writing the {self.what} {self.path} produced no file.", "report this as a bug.")
            if self.tmp.is_dir() or self.path.is_dir():  # a file replaces a file atomically; a folder goes first
                remove(self.path)
            self.tmp.replace(self.path)
        except OSError as err:
            self.discard()
            raise os_error(err, self.path, self.what) from err
        except BaseException:
            self.discard()
            raise
        return self.path

    def discard(self) -> None:
        """Remove the partial output (never raises)."""
        remove(self.tmp)


@contextmanager
def atomic_path(path: str | Path, what: str = "output", *, overwrite: bool = True,
                folder: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path (``<name>.partial``) to write into; it is renamed to ``path`` when the block
    ends without error and removed on any error or interruption. OSErrors become :class:`InputError`."""
    target = AtomicTarget(path, what, overwrite=overwrite, folder=folder)
    try:
        yield target.tmp
    except OSError as err:
        target.discard()
        raise os_error(err, target.path, what) from err
    except BaseException:
        target.discard()
        raise
    target.commit()


__all__ = ["PARTIAL", "AtomicTarget", "atomic_path", "check_writable", "os_error", "remove"]
