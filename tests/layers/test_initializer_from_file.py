"""InitializerFromFile: weights from a .npy file, never from pickled data."""

import numpy as np
import pytest

from minitrax.errors import ArgumentError, LayerError
from minitrax.layers.core import Embedding
from minitrax.layers.initializers import InitializerFromFile
from minitrax.shapes import ShapeDtype


def test_reads_the_array_and_keeps_its_dtype(tmp_path):
  table = np.arange(12, dtype=np.float32).reshape(4, 3)
  path = tmp_path / 'emb.npy'
  np.save(path, table)
  init = InitializerFromFile(path)  # a str or a path-like
  np.testing.assert_array_equal(init((4, 3), None), table)
  assert init((4, 3), None).dtype == np.float32
  assert InitializerFromFile(str(path))([4, 3], None, dtype=np.float16).dtype == np.float16
  np.save(tmp_path / 'ints.npy', np.arange(3, dtype=np.int32))
  assert InitializerFromFile(tmp_path / 'ints.npy')((3,), None).dtype == np.int32


def test_pretrained_embedding(tmp_path):
  table = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
  np.save(tmp_path / 'emb.npy', table)
  layer = Embedding(10, 4, kernel_initializer=InitializerFromFile(tmp_path / 'emb.npy'))
  layer.init(ShapeDtype((2, 3), np.int32))
  np.testing.assert_array_equal(layer(np.array([[0, 9, 2], [1, 1, 1]], np.int32)), table[[[0, 9, 2],
                                                                                          [1, 1,
                                                                                           1]]])
  with pytest.raises(LayerError, match=r'holds an array of shape \(10, 4\), expected \(11, 4\)'):
    Embedding(11, 4, kernel_initializer=InitializerFromFile(tmp_path / 'emb.npy')).init(
        ShapeDtype((2, 3), np.int32))


def test_refuses_pickles_and_archives(tmp_path):
  objects = np.array([{'code': 'runs on load'}], dtype=object)
  np.save(tmp_path / 'objects.npy', objects, allow_pickle=True)
  with pytest.raises(ArgumentError, match='does not hold a plain .npy array'):
    InitializerFromFile(tmp_path / 'objects.npy')((1,), None)
  np.savez(tmp_path / 'two.npz', a=np.zeros(2), b=np.ones(2))
  with pytest.raises(ArgumentError, match='is not a .npy file with one array'):
    InitializerFromFile(tmp_path / 'two.npz')((2,), None)
  with pytest.raises(FileNotFoundError):
    InitializerFromFile(tmp_path / 'missing.npy')((2,), None)
