"""Downloading distribution files through TFDS's download manager, failing fast when offline.

`fetch(files, root, dataset)` first tries one TCP connection to each host
it will download from (through the proxy of `$https_proxy`/`$http_proxy` when
one is set), all at once, for at most `PROBE_SECONDS`: no retries, no progress
bars. If a host cannot be reached it raises `DownloadFailed` at once, having
written nothing. Otherwise it downloads the files one at a time with
`tensorflow_datasets`' `DownloadManager` (TFDS's file names under
`root/downloads/DATASET/`, its checksum validation against the registered
SHA-256), and if a download fails it removes what that download left
(TFDS's `*.tmp.*` folders, and folders it created that stayed empty) before
raising `DownloadFailed`.
"""

import os
import shutil
import socket
import threading
import time
import urllib.parse
import urllib.request

__all__ = ['DownloadFailed', 'probe', 'fetch', 'PROBE_SECONDS']

PROBE_SECONDS = 3.0


class DownloadFailed(Exception):
  """A download did not happen; `str(error)` says why in one line."""


def _endpoint(url):
  """`(host, port)` a download of `url` connects to first (its proxy's, if one applies)."""
  parts = urllib.parse.urlsplit(url)
  proxy = urllib.request.getproxies().get(parts.scheme)
  if proxy and not urllib.request.proxy_bypass(parts.hostname or ''):
    parts = urllib.parse.urlsplit(proxy if '//' in proxy else f'http://{proxy}')
  default = 443 if parts.scheme == 'https' else 80
  return parts.hostname, parts.port or default


def _connect(endpoint, results):
  try:
    socket.create_connection(endpoint, timeout=PROBE_SECONDS).close()
    results[endpoint] = None
  except Exception as e:  # pylint: disable=broad-except  (whatever fails, there is no connection)
    results[endpoint] = e


def probe(urls):
  """Raises `DownloadFailed` unless one connection to each host of `urls` succeeds in time."""
  endpoints = sorted({_endpoint(u) for u in urls})
  results = {}
  threads = [threading.Thread(target=_connect, args=(e, results), daemon=True) for e in endpoints
            ]  # Daemons: a name lookup that hangs must not keep the program alive.
  deadline = time.monotonic() + PROBE_SECONDS
  for t in threads:
    t.start()
  for t in threads:
    t.join(max(0.0, deadline - time.monotonic()))
  for host, port in endpoints:
    error = results.get((host, port), f'no answer in {PROBE_SECONDS:g} s')
    if error is not None:
      raise DownloadFailed(f'no network: cannot connect to {host}:{port} ({error})')


def _snapshot(folders):
  """`{folder: set of entries, or None if absent}`."""
  return {f: set(os.listdir(f)) if os.path.isdir(f) else None for f in folders}


def _clean(before):
  """Removes `*.tmp.*` entries new since `before`, then new folders left empty (deepest first)."""
  for folder, entries in before.items():
    if os.path.isdir(folder):
      for name in set(os.listdir(folder)) - (entries or set()):
        if '.tmp.' in name:
          path = os.path.join(folder, name)
          shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
  for folder in sorted(before, key=len, reverse=True):
    if before[folder] is None and os.path.isdir(folder) and not os.listdir(folder):
      os.rmdir(folder)


def _first_line(error):
  lines = str(error).strip().splitlines()
  return f'{type(error).__name__}: {lines[0] if lines else ""}'


def fetch(files, root, dataset):
  """Downloads `files` (`DistFile`s) into TFDS's download folder under `root`.

  Args:
    files: the `DistFile`s to download.
    root: the TFDS data folder (downloads go to `root/downloads/dataset/`).
    dataset: the TFDS dataset name (without config).

  Returns:
    `{file name: path}` of the downloaded files (checksums validated by TFDS).

  Raises:
    DownloadFailed: offline, or a download failed (nothing of it is left).
  """
  probe([f.url for f in files])
  from tensorflow_datasets.core.download import checksums  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core.download import download_manager  # pylint: disable=g-import-not-at-top
  downloads = os.path.join(root, 'downloads')
  folders = [
      root, downloads,
      os.path.join(downloads, 'extracted'),
      os.path.join(downloads, dataset)
  ]
  before = _snapshot(folders)
  infos = {f.url: checksums.UrlInfo(size=f.size, checksum=f.sha256, filename=f.name) for f in files}
  paths, url = {}, files[0].url
  try:
    manager = download_manager.DownloadManager(download_dir=downloads, url_infos=infos,
                                               dataset_name=dataset)
    for f in files:  # One at a time: when one fails, none is still writing.
      url = f.url
      paths[f.name] = os.fspath(manager.download(url))
  except Exception as e:  # pylint: disable=broad-except  (any failure: clean up, say why)
    _clean(before)
    raise DownloadFailed(f'downloading {url} failed: {_first_line(e)}') from e
  return paths
