"""Tiny distribution files in the real formats, deterministic, for tests of the local readers.

Each writer builds a small file with the internal layout of the real one
(MNIST's gzipped IDX files, CIFAR's binary tar.gz, EMNIST's gzip.zip, the
IMDB and LM1B text archives) and returns what it wrote, so that tests can
compare what the readers give with what went in. Only the standard library
and NumPy are used: the same writers made the archives that real TFDS 4.9.2
(with TensorFlow) prepared to print the reference values in the tests.
"""

import gzip
import io
import os
import tarfile
import zipfile

import numpy as np


def idx_bytes(array):
  """The IDX encoding of a uint8 array."""
  array = np.asarray(array, np.uint8)
  header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, '>i4').tobytes()
  return header + array.tobytes()


def mnist_arrays(n, seed):
  """`(images (n, 28, 28) uint8, labels (n,) uint8)`: a pattern per label, and the index."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, n).astype(np.uint8)
  images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
  images[:, 0, 0], images[:, 0, 1] = np.arange(n) % 256, np.arange(n) // 256  # The row index.
  return images, labels


def write_idx_gz(folder, prefix, n, seed, names=None):
  """Writes `{prefix}-images-idx3-ubyte.gz` and `{prefix}-labels-idx1-ubyte.gz` into `folder`."""
  images, labels = mnist_arrays(n, seed)
  names = names or (f'{prefix}-images-idx3-ubyte.gz', f'{prefix}-labels-idx1-ubyte.gz')
  for name, array in zip(names, (images, labels)):
    with open(os.path.join(folder, name), 'wb') as f:
      f.write(gzip.compress(idx_bytes(array), mtime=0))
  return images, labels


def _add(tar, name, data):
  info = tarfile.TarInfo(name)
  info.size, info.mtime = len(data), 0
  tar.addfile(info, io.BytesIO(data))


def write_tar_gz(path, members):
  """A tar.gz of `members`: `[(path inside, bytes)]`, in that order."""
  with tarfile.open(path, 'w:gz') as tar:
    for name, data in members:
      _add(tar, name, data)


def cifar_records(n, n_labels, seed):
  """`(labels (n, n_labels) uint8, images (n, 3, 32, 32) uint8)` and their record bytes."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10 if n_labels == 1 else 20, (n, n_labels)).astype(np.uint8)
  images = rng.integers(0, 256, (n, 3, 32, 32)).astype(np.uint8)
  records = np.concatenate([labels, images.reshape(n, -1)], axis=1)
  return labels, images, records.tobytes()


def write_cifar10(path, per_batch=3, n_test=4):
  """A cifar-10-binary.tar.gz: 5 training batches of `per_batch` records, one test batch."""
  members, train, test = [('cifar-10-batches-bin/batches.meta.txt',
                           b'airplane\nautomobile\n' + b''.join(b'c%d\n' % i for i in range(8)))
                         ], [], None
  for i in range(1, 6):
    labels, images, data = cifar_records(per_batch, 1, seed=i)
    train.append((labels, images))
    members.append((f'cifar-10-batches-bin/data_batch_{i}.bin', data))
  labels, images, data = cifar_records(n_test, 1, seed=9)
  test = (labels, images)
  members.append(('cifar-10-batches-bin/test_batch.bin', data))
  write_tar_gz(path, members)
  cat = lambda parts, k: np.concatenate([p[k] for p in parts])
  return {'train': (cat(train, 0), cat(train, 1)), 'test': test}


def write_cifar100(path, n_train=5, n_test=3):
  """A cifar-100-binary.tar.gz with `train.bin` and `test.bin` (coarse, fine label bytes)."""
  out, members = {}, []
  for name, n_names in (('coarse_label_names.txt', 20), ('fine_label_names.txt', 100)):
    members.append((f'cifar-100-binary/{name}', b''.join(b'n%d\n' % i for i in range(n_names))))
  for split, n, seed in (('train', n_train, 11), ('test', n_test, 12)):
    labels, images, data = cifar_records(n, 2, seed)
    out[split] = (labels, images)
    members.append((f'cifar-100-binary/{split}.bin', data))
  write_tar_gz(path, members)
  return out


def write_emnist_zip(path, config='letters', n_train=6, n_test=4):
  """A gzip.zip holding `gzip/emnist-{config}-{split}-{images,labels}-...gz`."""
  out = {}
  with zipfile.ZipFile(path, 'w') as archive:
    for split, n, seed in (('train', n_train, 21), ('test', n_test, 22)):
      images, labels = mnist_arrays(n, seed)
      labels = labels + 1  # Letters: 1..26.
      out[split] = (images, labels)
      for kind, array in (('images-idx3', images), ('labels-idx1', labels)):
        archive.writestr(f'gzip/emnist-{config}-{split}-{kind}-ubyte.gz',
                         gzip.compress(idx_bytes(array), mtime=0))
  return out


def imdb_members():
  """`[(path, bytes)]` of a tiny aclImdb archive, files TFDS skips included."""
  members = [('aclImdb/README', b'readme'), ('aclImdb/imdb.vocab', b'the\nand\n'),
             ('aclImdb/train/urls_pos.txt', b'http://x\n'), ('aclImdb/train/pos/.hidden.txt', b'x'),
             ('aclImdb/train/pos/9_9.txt~', b'editor backup')]
  for split, count in (('train', 4), ('test', 3)):
    for label in ('neg', 'pos'):
      for i in range(count):
        text = f'  {split} {label} review {i}: fine<br />film \u00e9t\u00e9\n'.encode()
        members.append((f'aclImdb/{split}/{label}/{i}_{i + 3}.txt', text))
  members += [(f'aclImdb/train/unsup/{i}_0.txt', f'unlabeled {i}\n'.encode()) for i in range(3)]
  return members


def lm1b_members():
  """`[(path, bytes)]` of a tiny LM1B archive: tricky newlines and whitespace included."""
  top = '1-billion-word-language-modeling-benchmark-r13output'
  train = f'{top}/training-monolingual.tokenized.shuffled'
  held = f'{top}/heldout-monolingual.tokenized.shuffled'
  return [
      (f'{top}/README', b'readme\n'),
      (f'{train}/news.en-00001-of-00100', b'The cat sat .\nA dog \xc2\xa0\n\nold\rmac\r\nend\n'),
      (f'{train}/news.en-00002-of-00100', 'caf\u00e9 ok .\nx\u2028y \n last'.encode()),
      (f'{held}/news.en.heldout-00000-of-00050', b'Held out one .\nHeld out two .\n'),
      (f'{held}/README.txt', b'not a heldout file\n'),
  ]
