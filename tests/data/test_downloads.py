"""Tests for minitrax.data.downloads: offline in seconds, TFDS downloads, nothing left behind.

No test reaches the internet: the network is made unreachable (name lookups
fail, or URLs point at a closed local port), or files come from a local HTTP
server on 127.0.0.1 serving tiny fakes.
"""

import functools
import hashlib
import http.server
import os
import socket
import sys
import threading
import time

import pytest

from minitrax.data import distribution_files as files_lib
from minitrax.data import downloads, tfds_inputs
from minitrax.errors import DataError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distribution_fakes as fakes  # noqa: E402

tfds = pytest.importorskip('tensorflow_datasets')
MNIST_FILES = ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
               't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')


def _no_name_lookups(monkeypatch):

  def fail(*args, **kwargs):
    raise socket.gaierror(-3, 'Temporary failure in name resolution')

  monkeypatch.setattr(socket, 'getaddrinfo', fail)


def _closed_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _all_files(folder):
  return sorted(
      os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def _fakes(folder):
  """Writes fake MNIST files into `folder`; `{name: bytes}`."""
  os.makedirs(folder, exist_ok=True)
  fakes.write_idx_gz(folder, 'train', 6, seed=1)
  fakes.write_idx_gz(folder, 't10k', 5, seed=2)
  return {n: open(os.path.join(folder, n), 'rb').read() for n in MNIST_FILES}


def _register(monkeypatch, contents, base_url):
  registry = {
      n: files_lib.DistFile(n, f'{base_url}/{n}', len(d),
                            hashlib.sha256(d).hexdigest()) for n, d in contents.items()
  }
  monkeypatch.setattr(files_lib, 'registered', lambda dataset: dict(registry))
  return registry


@pytest.fixture
def server(tmp_path):
  """A local HTTP server of the folder `tmp_path / 'served'`; yields its base URL."""
  served = tmp_path / 'served'
  served.mkdir()
  handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
  handler.func.log_message = lambda *args: None
  httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  yield f'http://127.0.0.1:{httpd.server_address[1]}', served
  httpd.shutdown()
  httpd.server_close()


def test_offline_is_known_in_seconds_and_says_what_to_put_where(tmp_path, monkeypatch):
  _no_name_lookups(monkeypatch)
  start = time.monotonic()
  with pytest.raises(DataError) as info:
    tfds_inputs('mnist', data_dir=str(tmp_path))
  assert time.monotonic() - start < 5
  lines = str(info.value).splitlines()
  assert lines[0] == (
      f"TFDS dataset 'mnist': splits 'train', 'test' need files that are not in data_dir "
      f"'{tmp_path}' and were not downloaded (no network: cannot connect to "
      'storage.googleapis.com:443 ([Errno -3] Temporary failure in name resolution)). Download '
      f"them elsewhere and put them, named as here, in {tmp_path}/ (or in TFDS's folder "
      f'{tmp_path}/downloads/manual/):')
  assert lines[1:] == [
      '  train-images-idx3-ubyte.gz  sha256 440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8'
      'f203523609  (9,912,422 bytes, https://storage.googleapis.com/cvdf-datasets/mnist/train-'
      'images-idx3-ubyte.gz)',
      '  train-labels-idx1-ubyte.gz  sha256 3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a073'
      '0e8010255c  (28,881 bytes, https://storage.googleapis.com/cvdf-datasets/mnist/train-labels-'
      'idx1-ubyte.gz)',
      '  t10k-images-idx3-ubyte.gz  sha256 8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f'
      '5a2dbc4e6  (1,648,877 bytes, https://storage.googleapis.com/cvdf-datasets/mnist/t10k-images'
      '-idx3-ubyte.gz)',
      '  t10k-labels-idx1-ubyte.gz  sha256 f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb25992'
      '4204aec6  (4,542 bytes, https://storage.googleapis.com/cvdf-datasets/mnist/t10k-labels-idx1'
      '-ubyte.gz)'
  ]
  assert os.listdir(tmp_path) == []  # Nothing written.
  assert 'tensorflow' not in sys.modules


def test_a_missing_split_shows_the_slicing_form(tmp_path, monkeypatch):
  contents = _fakes(str(tmp_path / 'src'))
  for name in MNIST_FILES[2:]:
    (tmp_path / name).write_bytes(contents[name])
  port = _closed_port()
  _register(monkeypatch, contents, f'http://127.0.0.1:{port}')
  start = time.monotonic()
  with pytest.raises(DataError) as info:
    tfds_inputs('mnist', data_dir=str(tmp_path))
  assert time.monotonic() - start < 5
  lines = str(info.value).splitlines()
  assert lines[0].startswith(
      "TFDS dataset 'mnist': split 'train' needs files that are not in data_dir "
      f"'{tmp_path}' and were not downloaded (no network: cannot connect to 127.0.0.1:{port} "
      '([Errno 111] Connection refused)).')
  assert [line.split()[0] for line in lines[1:3]] == list(MNIST_FILES[:2])
  assert lines[3] == ("The files of split 'test' are here: to train and evaluate on it, slice it "
                      "as TFDS does, e.g. train_split='test[:80%]', eval_split='test[80%:]'.")
  data = tfds_inputs('mnist', data_dir=str(tmp_path), batch_size=2, train_split='test[:80%]',
                     eval_split='test[80%:]')
  assert next(data.train_stream(1))[0].shape == (2, 28, 28, 1)


def test_download_false_and_files_that_are_not_genuine(tmp_path, monkeypatch):
  contents = _fakes(str(tmp_path / 'src'))
  _register(monkeypatch, contents, 'http://127.0.0.1:9')
  (tmp_path / 'train-labels-idx1-ubyte.gz').write_bytes(b'truncated')
  with pytest.raises(DataError) as info:
    tfds_inputs('mnist', data_dir=str(tmp_path), download=False, train_split='train',
                eval_split='train[:1]')
  lines = str(info.value).splitlines()
  assert '(download=False)' in lines[0]
  assert lines[3] == (f'Found but not genuine (size or SHA-256 differ): {tmp_path}/train-labels-'
                      'idx1-ubyte.gz (9 bytes, not the registered file)')


def test_a_slow_name_lookup_gives_up_in_time(monkeypatch):
  monkeypatch.setattr(downloads, 'PROBE_SECONDS', 0.3)

  def slow(*args, **kwargs):
    time.sleep(1)
    raise socket.gaierror(-3, 'Temporary failure in name resolution')

  monkeypatch.setattr(socket, 'getaddrinfo', slow)
  start = time.monotonic()
  with pytest.raises(downloads.DownloadFailed) as info:
    downloads.probe(['https://example.org/a.gz', 'http://example.org/b.gz'])
  assert time.monotonic() - start < 1
  assert str(info.value) == 'no network: cannot connect to example.org:80 (no answer in 0.3 s)'


def test_probe_goes_to_the_proxy(monkeypatch):
  monkeypatch.setenv('https_proxy', 'http://127.0.0.1:9')
  monkeypatch.setenv('no_proxy', '')
  with pytest.raises(downloads.DownloadFailed, match=r'cannot connect to 127.0.0.1:9 '):
    downloads.probe(['https://example.org/a.gz'])


def test_download_through_tfds_then_found_offline(tmp_path, monkeypatch, server):
  base_url, served = server
  contents = _fakes(str(served))
  registry = _register(monkeypatch, contents, base_url)
  data_dir = tmp_path / 'data'
  make = lambda: tfds_inputs('mnist', data_dir=str(data_dir), batch_size=2, eval_batch_size=2)
  first = next(make().train_stream(1))
  names = [files_lib.tfds_download_name(registry[n]) for n in MNIST_FILES]
  assert _all_files(data_dir) == sorted([f'downloads/mnist/{n}' for n in names] +
                                        [f'downloads/mnist/{n}.INFO' for n in names])
  _no_name_lookups(monkeypatch)
  again = next(make().train_stream(1))  # Found where TFDS put them: no network needed.
  assert all((a == b).all() for a, b in zip(first, again))


def test_a_failed_download_leaves_nothing(tmp_path, monkeypatch, server):
  base_url, served = server
  contents = _fakes(str(served))
  _register(monkeypatch, contents, base_url)
  (served / 'train-images-idx3-ubyte.gz').write_bytes(b'something else')
  data_dir = tmp_path / 'data'
  with pytest.raises(DataError) as info:
    tfds_inputs('mnist', data_dir=str(data_dir), train_split='train', eval_split='train[:2]')
  assert (f'were not downloaded (downloading {base_url}/train-images-idx3-ubyte.gz failed: '
          'NonMatchingChecksumError: Artifact ') in str(info.value)
  assert not data_dir.exists()  # No downloads/*.tmp.* folder, no empty folders.
