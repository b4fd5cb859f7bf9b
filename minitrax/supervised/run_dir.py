"""A run's output folder: checked when the run starts, and locked for the run's life.

A `Trainer`, `train()` or `Loop` given an `output_dir` calls `acquire` first,
before it reads data, builds layers or compiles anything:

* the folder must be a folder (not a file, not under a file) and writable; it
  is created if missing. Otherwise `RunDirError` names the folder and the
  reason.
* the run takes an exclusive `fcntl.flock` on `<output_dir>/.lock` and writes
  its pid and host into it. A second run on the same folder (in this process
  or another, on this host or, where the file system supports flock, another
  one) is refused with a `RunDirError` naming the holder's pid and host.

The lock is released by `RunDir.release` (the runs' `close()`, or leaving a
`with` block), when the `RunDir` is garbage-collected, at interpreter exit,
and by the operating system when the process dies, even by SIGKILL: a crashed
run never blocks the next. The `.lock` file itself stays (deleting it could
let two runs lock two different files). Clean-ups of the folder, such as
removing temporary files that killed saves left, happen only under the lock.
"""

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
import weakref

from minitrax import distributed
from minitrax.errors import RunDirError, TrainingError

LOCK_NAME = '.lock'

__all__ = ['LOCK_NAME', 'RunDir', 'RunDirOwner', 'acquire', 'check_folder']


def _fail(who, path, reason, cause=None):
  error = RunDirError(f'{who}: cannot use output_dir {path}: {reason}')
  if cause is not None:
    raise error from cause
  raise error


def check_folder(path, who):
  """Raises `RunDirError` unless `path` is, or can be made, a writable folder; creates it.

  Args:
    path: the output folder (absolute or relative).
    who: the caller, for messages ('Trainer', 'Loop', ...).

  Returns:
    Whether the folder was created.
  """
  full = os.path.abspath(path)
  if os.path.lexists(full) and not os.path.isdir(full):
    _fail(who, path, 'it is a file, not a folder')
  existing = full
  while not os.path.lexists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    _fail(who, path, f'it lies under {existing}, which is a file, not a folder')
  if not os.access(existing, os.W_OK | os.X_OK):
    what = 'it is' if existing == full else f'its parent {existing} is'
    _fail(who, path, f'{what} not writable (permission denied)')
  try:
    os.makedirs(full, exist_ok=True)
  except OSError as e:
    _fail(who, path, f'cannot create it ({e.strerror})', e)
  return existing != full


class RunDir:
  """The lock of one run on its output folder; see the module docstring.

  Attributes:
    path: the output folder.
    lock_path: `<path>/.lock`.
    created: whether this run created the folder.
  """

  def __init__(self, path, fd, created=False):
    self.path, self.created = path, created
    self.lock_path = os.path.join(path, LOCK_NAME)
    self._release = weakref.finalize(self, os.close, fd)

  @property
  def held(self):
    """Whether this run still holds the lock."""
    return self._release.alive

  def is_for(self, output_dir):
    """Whether `output_dir` names this run's folder."""
    path = os.path.expanduser(os.fspath(output_dir)) if output_dir else None
    return bool(path) and os.path.isdir(path) and os.path.samefile(path, self.path)

  def release(self):
    """Releases the lock (closes the lock file); a second call does nothing."""
    self._release()

  def abandon(self):
    """Releases the lock of a run that failed to start; removes the folder if it made it empty."""
    if self.held and self.created and os.listdir(self.path) == [LOCK_NAME]:
      try:
        os.remove(self.lock_path)
        os.rmdir(self.path)
      except OSError:
        pass
    self.release()


def acquire(output_dir, who):
  """Checks `output_dir` and locks it for this run; None for no folder.

  Returns:
    A `RunDir` holding the lock, or None if `output_dir` is None or empty.

  Raises:
    RunDirError: the folder is a file, lies under a file or is not writable,
      or another run holds its lock.
  """
  if not output_dir:
    return None
  path = os.path.expanduser(os.fspath(output_dir))
  created = check_folder(path, who)
  if not distributed.is_main():  # process 0 holds the lock for all processes of a run
    return None
  lock_path = os.path.join(path, LOCK_NAME)
  try:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    _fail(who, path, f'cannot open its lock file {lock_path} ({e.strerror})', e)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    holder = _holder(fd)
    os.close(fd)
    if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
      _fail(who, path, f'cannot lock {lock_path} ({e.strerror})', e)
    busy = holder
  else:
    _write_holder(fd)
    return RunDir(path, fd, created)
  _fail(
      who, path, f'another run holds its lock {lock_path} ({busy}); wait for that run to end '
      'or pick another output_dir' + _same_process_hint(busy))


def _write_holder(fd):
  """Records this process as the lock's holder (best effort: the lock is what counts)."""
  record = {
      'pid': os.getpid(), 'host': socket.gethostname(), 'since': time.strftime('%Y-%m-%d %H:%M:%S')
  }
  try:
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + '\n').encode('utf-8'), 0)
  except OSError:
    pass


def _holder(fd):
  """`'pid P on host H since T'` from the lock file, or what is known of the holder."""
  try:
    record = json.loads(os.pread(fd, 4096, 0).decode('utf-8'))
    return f'pid {int(record["pid"])} on host {record["host"]} since {record["since"]}'
  except (OSError, ValueError, KeyError, TypeError, AttributeError):
    return 'pid and host unknown: the holder has not written them yet'


def _same_process_hint(holder):
  if holder.startswith(f'pid {os.getpid()} on host {socket.gethostname()} '):
    return (' (it is this process: call close() on the Trainer or Loop that uses the folder, '
            'or use it in a with block)')
  return ''


class RunDirOwner:
  """Mixin of the runs that hold an output folder (`Trainer`, `Loop`) in `self._run_dir`.

  Gives `close()` (releases the folder), use in a `with` block (closed at its
  end), `_closed_on_error()` (a run that fails to start releases the folder)
  and `_check_open(who)` (a closed run refuses to train).
  """

  _run_dir = None

  def close(self):
    """Ends the run: releases its output folder (a second call does nothing)."""
    if self._run_dir is not None:
      self._run_dir.release()

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self.close()

  @contextlib.contextmanager
  def _closed_on_error(self):
    """Closes the run if the block raises (a run that failed to start)."""
    try:
      yield
    except BaseException:
      if self._run_dir is not None:
        self._run_dir.abandon()
      self.close()
      raise

  def _check_open(self, who):
    """Raises TrainingError if the run was closed."""
    if self._run_dir is not None and not self._run_dir.held:
      raise TrainingError(f'{who}: closed, its output_dir {self._run_dir.path} released; make a '
                          'new one to train again')
