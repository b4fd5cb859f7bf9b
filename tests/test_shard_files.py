"""Tests for minitrax.shard_files: sharded arrays saved in per-process pieces, read back whole.

No processes here: records and shard files are made by hand, and a save of
"sharded" arrays is simulated in one process by taking every 2-d array for one
split over processes (its one shard is then this process's piece). The runs of
2 processes are in tests/supervised/test_distributed.py.
"""

import os
import re

import numpy as np
import pytest

import jax.numpy as jnp

from minitrax import checkpoint, distributed, shard_files
from minitrax.errors import CheckpointError
from minitrax.layers.core import Dense
from minitrax.shapes import ShapeDtype
from minitrax.supervised.run_checkpoint import Checkpoints

WHOLE = np.arange(24, dtype=np.float32).reshape(4, 6)
RECORD = {'sharded_array': "['w']", 'shape': [4, 6], 'dtype': 'float32', 'files': ['a', 'b']}


def _piece(rows, cols=(0, 6), data=None):
  index = [list(rows), list(cols)]
  return {'index': index, 'data': WHOLE[rows[0]:rows[1], cols[0]:cols[1]] if data is None else data}


def test_assemble_puts_the_pieces_of_two_files_together():
  whole = shard_files.assemble(RECORD, [('b', _piece((2, 4))), ('a', _piece((0, 2)))], "['w']")
  np.testing.assert_array_equal(whole, WHOLE)
  assert whole.dtype == np.float32


def test_assemble_refuses_pieces_that_leave_elements_out():
  with pytest.raises(CheckpointError) as e:
    shard_files.assemble(RECORD, [('a', _piece((0, 2))), ('a', _piece((3, 4), (0, 6)))], "['w']")
  assert str(e.value) == ("a: the pieces of ['w'] cover 18 of its 24 elements (shape (4, 6)); "
                          'the first missing one is at (2, 0)')


def test_assemble_refuses_overlapping_pieces():
  with pytest.raises(CheckpointError) as e:
    shard_files.assemble(RECORD, [('a', _piece((0, 3))), ('b', _piece((2, 4)))], "['w']")
  assert str(e.value) == ("b: the piece [2:4, 0:6] of ['w'] overlaps another piece (each element "
                          'is written once)')


def test_assemble_refuses_a_piece_outside_the_array():
  outside = {'index': [[2, 5], [0, 6]], 'data': np.zeros((3, 6), np.float32)}
  with pytest.raises(CheckpointError) as e:
    shard_files.assemble(RECORD, [('a', outside)], "['w']")
  assert str(e.value) == "a: the piece [2:5, 0:6] of ['w'] lies outside its shape (4, 6)"


def test_assemble_refuses_a_piece_of_another_shape_or_dtype_than_its_index():
  half = _piece((0, 2), data=WHOLE[:2].astype(np.float16))
  with pytest.raises(CheckpointError) as e:
    shard_files.assemble(RECORD, [('a', half)], "['w']")
  assert str(
      e.value) == "a: the piece [0:2, 0:6] of ['w'] holds (2, 6) float16, expected (2, 6) float32"
  short = _piece((0, 2), data=WHOLE[:1])
  with pytest.raises(CheckpointError) as e:
    shard_files.assemble(RECORD, [('a', short)], "['w']")
  assert str(
      e.value) == "a: the piece [0:2, 0:6] of ['w'] holds (1, 6) float32, expected (2, 6) float32"


def test_assemble_refuses_a_malformed_piece():
  with pytest.raises(CheckpointError) as e:
    shard_files.assemble(RECORD, [('a', {'index': [[0, 2]], 'data': WHOLE[:2]})], "['w']")
  assert str(e.value).startswith(
      'a: a piece of [\'w\'] is malformed: expected {"index": [[start, stop]] * 2, "data": array}, '
      "got {'index': [[0, 2]], 'data': array(")


def _write_sharded_checkpoint(folder):
  """A checkpoint `model.pkl` whose 'weights'[0] lies in two shard files, as 2 processes save."""
  shards = folder / 'model.pkl.shards-3-0000abcd'
  record = dict(RECORD, sharded_array="['weights'][0]",
                files=['process-0.msgpack', 'process-1.msgpack'])
  for p, rows in enumerate([(0, 2), (2, 4)]):
    checkpoint.save(
        shards / f'process-{p}.msgpack',
        {'format': shard_files.FORMAT, 'process': p, 'arrays': {"['weights'][0]": [_piece(rows)]}})
  checkpoint.save(
      folder / 'model.pkl',
      {'step': 3, 'shard_folder': shards.name, 'weights': (record, np.ones(3, np.float32))})
  return folder / 'model.pkl', shards


def test_a_checkpoint_with_shard_files_is_read_with_whole_arrays(tmp_path):
  path, _ = _write_sharded_checkpoint(tmp_path)
  tree = checkpoint.load(path)
  assert sorted(tree) == ['step', 'weights'] and tree['step'] == 3
  np.testing.assert_array_equal(tree['weights'][0], WHOLE)
  np.testing.assert_array_equal(tree['weights'][1], np.ones(3))
  assert checkpoint.load(path, shards=False)['weights'][0] == dict(
      RECORD, sharded_array="['weights'][0]", files=['process-0.msgpack', 'process-1.msgpack'])


def test_a_missing_or_corrupt_shard_file_names_the_file_and_the_tree_path(tmp_path):
  path, shards = _write_sharded_checkpoint(tmp_path)
  second = shards / 'process-1.msgpack'
  data = bytearray(second.read_bytes())
  data[-5] ^= 0xff
  second.write_bytes(bytes(data))
  with pytest.raises(CheckpointError) as e:
    checkpoint.load(path)
  assert str(e.value) == (f"{path}: cannot read the pieces of ['weights'][0]: {second}: the "
                          'checkpoint is corrupted (payload checksum mismatch)')
  os.remove(second)
  with pytest.raises(CheckpointError) as e:
    checkpoint.load(path)
  assert str(e.value) == (f"{path}: cannot read the pieces of ['weights'][0]: {second}: No such "
                          'file or directory')


def test_a_shard_file_missing_a_piece_is_refused(tmp_path):
  path, shards = _write_sharded_checkpoint(tmp_path)
  checkpoint.save(shards / 'process-1.msgpack',
                  {'format': shard_files.FORMAT, 'process': 1, 'arrays': {"['weights'][0]": []}})
  with pytest.raises(CheckpointError) as e:
    checkpoint.load(path)
  assert str(e.value) == (f"{shards}: the pieces of ['weights'][0] cover 12 of its 24 elements "
                          '(shape (4, 6)); the first missing one is at (2, 0)')


def test_a_malformed_record_or_folder_field_is_refused(tmp_path):
  path = tmp_path / 'model.pkl'
  checkpoint.save(path, {'shard_folder': '../elsewhere.shards-1-0', 'w': 1})
  with pytest.raises(CheckpointError) as e:
    checkpoint.load(path)
  assert str(e.value) == (f'{path}: field "shard_folder" must name a folder beside the file '
                          "(<name>.shards-<step>-<nonce>), got '../elsewhere.shards-1-0'")
  checkpoint.save(path, {'shard_folder': 'model.pkl.shards-1-0', 'w': dict(RECORD, files=['/x'])})
  with pytest.raises(
      CheckpointError,
      match=re.escape(f"{path}: the sharded array record at ['w'] is malformed: expected")):
    checkpoint.load(path)


@pytest.fixture(name='as_if_sharded')
def _as_if_sharded(monkeypatch):
  """Takes every 2-d jax.Array for one split over processes (so `save` writes shard files)."""
  monkeypatch.setattr(distributed, 'is_sharded_over_processes',
                      lambda x: hasattr(x, 'addressable_shards') and x.ndim == 2)


def _folders(folder):
  return sorted(n for n in os.listdir(folder) if '.shards-' in n)


def test_a_save_killed_before_its_commit_leaves_the_previous_checkpoint_readable(
    tmp_path, monkeypatch, as_if_sharded):
  del as_if_sharded
  path = tmp_path / 'model.pkl'
  shard_files.save(path, {'step': 1, 'w': jnp.ones((4, 6)), 'b': np.zeros(2)}, 1)
  [first] = _folders(tmp_path)
  assert first.startswith('model.pkl.shards-1-')
  assert os.listdir(tmp_path / first) == ['process-0.msgpack']
  assert checkpoint.load(path, shards=False)['shard_folder'] == first
  replace = os.replace

  def crash_at_commit(src, dst):
    if os.fspath(dst) == os.fspath(path):
      raise KeyboardInterrupt('killed before the commit')
    replace(src, dst)

  monkeypatch.setattr(os, 'replace', crash_at_commit)
  with pytest.raises(KeyboardInterrupt):
    shard_files.save(path, {'step': 2, 'w': 2 * jnp.ones((4, 6)), 'b': np.zeros(2)}, 2)
  monkeypatch.setattr(os, 'replace', replace)
  assert len(_folders(tmp_path)) == 2  # the killed save's pieces are written, not committed
  saved = checkpoint.load(path)
  assert saved['step'] == 1 and sorted(saved) == ['b', 'step', 'w']
  np.testing.assert_array_equal(saved['w'], np.ones((4, 6)))
  checkpoint.remove_temporaries(str(tmp_path), '*.pkl')  # as a restarted run does
  assert _folders(tmp_path) == [first]
  shard_files.save(path, {'step': 3, 'w': 3 * jnp.ones((4, 6)), 'b': np.zeros(2)}, 3)
  [third] = _folders(tmp_path)  # the previous folder goes after the commit
  assert third.startswith('model.pkl.shards-3-')
  np.testing.assert_array_equal(checkpoint.load(path)['w'], 3 * np.ones((4, 6)))
  shard_files.save(path, {'step': 4, 'w': np.ones((4, 6))}, 4)  # nothing sharded: one file
  assert _folders(tmp_path) == [] and 'shard_folder' not in checkpoint.load(path)


def test_retention_deletes_a_numbered_checkpoint_with_its_shard_folder(tmp_path, as_if_sharded):
  del as_if_sharded
  for step in (2, 4, 6):
    shard_files.save(tmp_path / f'model_{step}.pkl', {'w': jnp.ones((2, 2))}, step)
  (tmp_path / 'model_9.pkl.shards-9-00000001').mkdir()  # a killed save's: its file is not there
  Checkpoints(str(tmp_path), keep=2).prune(6)
  files = sorted(n for n in os.listdir(tmp_path) if '.shards-' not in n)
  owners = [n.split('.shards-')[0] for n in _folders(tmp_path)]
  assert files == ['model_4.pkl', 'model_6.pkl']
  assert owners == ['model_4.pkl', 'model_6.pkl', 'model_9.pkl']
  checkpoint.remove_temporaries(str(tmp_path), '*.pkl')  # model_9.pkl's folder is a stray
  assert [n.split('.shards-')[0] for n in _folders(tmp_path)] == ['model_4.pkl', 'model_6.pkl']


def test_init_from_file_reads_a_trainer_checkpoint_with_shard_files(tmp_path, as_if_sharded):
  del as_if_sharded
  saved = Dense(4)
  saved.init(ShapeDtype((1, 6)))
  kernel, bias = saved.weights
  path = tmp_path / 'model.pkl'
  shard_files.save(path, {'weights': (jnp.asarray(kernel), np.asarray(bias)), 'state': ()}, 1)
  assert 'shard_folder' in checkpoint.load(path, shards=False)  # the kernel is in the folder
  layer = Dense(4)
  layer.init_from_file(str(path), input_signature=ShapeDtype((1, 6)))
  np.testing.assert_array_equal(layer.weights[0], kernel)
  np.testing.assert_array_equal(layer.weights[1], bias)
