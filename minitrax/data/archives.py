"""Reading the files inside distribution archives, streamed, without unpacking them.

A container is a `.tar.gz` (or any tar) archive, a `.zip` archive, a folder
where one was extracted, or a single file. `members(accept)` yields
`(path, file object)` for each file whose path inside the container
`accept(path)` approves, in the container's order; a tar archive is read as a
stream, once, front to back (each file object must be read before the next
is asked for).

Paths are normalised as TFDS normalises them (`os.path.normpath`; files whose
path is absolute, starts with a dot, ends with `~` or whose name starts with a
dot are skipped), because TFDS derives example keys, and so example order,
from them.
"""

import gzip
import os
import tarfile
import zipfile

from minitrax.errors import DataError

__all__ = ['TarArchive', 'ZipArchive', 'Folder', 'SingleFile', 'normalized', 'read_maybe_gzipped']


def normalized(path):
  """`path` as TFDS normalises paths inside archives, or None for a file TFDS skips."""
  path = os.path.normpath(path)
  if (path.startswith('.') or os.path.isabs(path) or path.endswith('~') or
      os.path.basename(path).startswith('.')):
    return None
  return path


def read_maybe_gzipped(fileobj, where):
  """All bytes of `fileobj`, gunzipped if they start with gzip's magic bytes."""
  data = fileobj.read()
  if data[:2] == b'\x1f\x8b':
    try:
      data = gzip.decompress(data)
    except (OSError, EOFError) as e:
      raise DataError(f'{where}: gzip data is corrupt or truncated ({e})') from e
  return data


class TarArchive:
  """A tar archive (gzipped or not), streamed front to back."""

  def __init__(self, path):
    self.path = path

  def members(self, accept):
    try:
      with open(self.path, 'rb') as raw, tarfile.open(fileobj=raw, mode='r|*') as tar:
        for member in tar:
          path = normalized(member.name) if member.isfile() else None
          if path is not None and accept(path):
            yield path, tar.extractfile(member)
    except (tarfile.TarError, EOFError, OSError) as e:
      raise DataError(f'{self.path}: cannot read it as a tar archive ({e})') from e

  def __repr__(self):
    return self.path


class ZipArchive:
  """A zip archive, its files in stored order."""

  def __init__(self, path):
    self.path = path

  def members(self, accept):
    try:
      with zipfile.ZipFile(self.path) as archive:
        for info in archive.infolist():
          path = None if info.is_dir() else normalized(info.filename)
          if path is not None and accept(path):
            with archive.open(info) as f:
              yield path, f
    except (zipfile.BadZipFile, OSError) as e:
      raise DataError(f'{self.path}: cannot read it as a zip archive ({e})') from e

  def __repr__(self):
    return self.path


class Folder:
  """A folder where an archive was extracted: its files below `tops`, in sorted order.

  Args:
    path: the folder (paths of members are relative to it).
    tops: the archive's top-level folders; only these are walked.
  """

  def __init__(self, path, tops):
    self.path, self.tops = path, tuple(tops)

  def members(self, accept):
    for top in self.tops:
      for folder, dirs, files in os.walk(os.path.join(self.path, top)):
        dirs.sort()
        for name in sorted(files):
          path = normalized(os.path.relpath(os.path.join(folder, name), self.path))
          if path is not None and accept(path):
            with open(os.path.join(self.path, path), 'rb') as f:
              yield path, f

  def __repr__(self):
    return self.path


class SingleFile:
  """One file, seen as a container holding it under the name `member`."""

  def __init__(self, path, member):
    self.path, self.member = path, member

  def members(self, accept):
    if accept(self.member):
      with open(self.path, 'rb') as f:
        yield self.member, f

  def __repr__(self):
    return self.path
