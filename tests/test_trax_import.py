"""Checkpoints of real Trax 1.2.3 and 1.4.1 load into minitrax models, and no pickle ever runs.

The files under tests/fixtures/trax/ were written by real Trax (make_fixtures.py
there says how): each model's output after `init_from_file` must equal the
output real Trax computed from the same file (output.npy) within 1e-5.
"""

import gzip
import io
import os
import pickle

import jax
import ml_dtypes
import numpy as np
import pytest

from minitrax import checkpoint, trax_import
from minitrax.errors import CheckpointError
from minitrax.layers.positions import PositionalEncoding14
from minitrax.models import trax14
from minitrax.models.mlp import MLP
from minitrax.models.rnn import RNNLM
from minitrax.models.transformer import TransformerLM
from minitrax.shapes import ShapeDtype

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'trax')
LM = dict(d_model=8, d_ff=16, n_layers=1, n_heads=2, max_len=16)

MODELS = {  # fixture folder: the minitrax model of that generation, by mode
    'v12_transformer_lm': lambda mode: TransformerLM(16, mode=mode, **LM),
    'v12_rnnlm': lambda mode: RNNLM(16, d_model=8, n_layers=2, mode=mode),
    'v12_mlp': lambda mode: MLP(d_hidden=8, n_hidden_layers=1, n_output_classes=4, mode=mode),
    'v14_transformer_lm': lambda mode: trax14.TransformerLM(16, mode=mode, **LM),
    'v14_rnnlm': lambda mode: trax14.RNNLM(16, d_model=8, n_layers=2, mode=mode),
    'v14_mlp': lambda mode: trax14.MLP(layer_widths=(8, 4), mode=mode),
}


def _fixture(name):
  folder = os.path.join(FIXTURES, name)
  path = os.path.join(folder, 'model.pkl' if name.startswith('v12') else 'model.pkl.gz')
  return path, np.load(os.path.join(folder,
                                    'input.npy')), np.load(os.path.join(folder, 'output.npy'))


# ------------------------------------------------------------------ real Trax files


@pytest.mark.parametrize('name', sorted(MODELS))
def test_model_loaded_from_a_trax_file_gives_trax_outputs(name):
  path, x, expected = _fixture(name)
  model = MODELS[name]('eval')
  model.init(ShapeDtype(x.shape, x.dtype))
  fresh = np.asarray(model(x))
  model.init_from_file(path)  # weights and state (Trax's Dropout rates in its state are skipped)
  got = np.asarray(model(x))
  np.testing.assert_allclose(got, expected, atol=1e-5)
  assert np.abs(fresh - expected).max() > 1e-3  # the file, not the initialisation, gave these


@pytest.mark.parametrize('name', ['v12_transformer_lm', 'v14_transformer_lm'])
def test_trax_weights_decode_in_predict_mode_as_in_eval(name):
  path, x, expected = _fixture(name)
  model = MODELS[name]('predict')
  model.init(ShapeDtype((x.shape[0], 1), np.int32))
  model.init_from_file(path, weights_only=True)
  fed = np.concatenate([np.zeros_like(x[:, :1]), x[:, :-1]], axis=1)
  got = np.concatenate([np.asarray(model(fed[:, i:i + 1])) for i in range(x.shape[1])], axis=1)
  np.testing.assert_allclose(got, expected, atol=1e-5)


def test_import_trax_gives_nested_trees_for_1_2_and_flat_lists_for_1_4():
  weights, state = checkpoint.import_trax(_fixture('v12_transformer_lm')[0])
  assert isinstance(weights, (list, tuple)) and weights[0] == ()  # ShiftRight: no weights
  shapes = [a.shape for a in trax_import.trax_leaves(weights)]
  # Embedding, the (1, max_len, d) table, LayerNorm, four kernels without biases, ...
  assert shapes[:8] == [(16, 8), (1, 16, 8), (8,), (8,), (8, 8), (8, 8), (8, 8), (8, 8)]
  assert len(shapes) == 18 and trax_import.state_leaves(state) == []
  flat, flat_state = checkpoint.import_trax(_fixture('v14_transformer_lm')[0])
  assert [a.shape for a in flat[:6]] == [(16, 8), (16, 8), (8,), (8,), (8, 8), (8,)]
  assert len(flat) == 22 and all(isinstance(a, np.ndarray) for a in flat)
  # Trax 1.4 keeps each Dropout's rate in the state: 0-d float32 arrays.
  assert [(a.shape, a.dtype, float(a)) for a in flat_state
         ] == [((), np.float32, np.float32(0.1))] * 4


def test_read_checkpoint_keeps_step_history_and_input_signature():
  old = trax_import.read_checkpoint(_fixture('v12_rnnlm')[0])
  assert (old.version, old.step) == ('1.2', 1)
  [(step, rate)] = old.history.values['train']['training/learning_rate']
  assert step == 1 and float(rate) == pytest.approx(0.05)
  assert old.raw['version_timestamp'] == 'Jan-13-2020'
  new = trax_import.read_checkpoint(_fixture('v14_rnnlm')[0])
  assert (new.version, new.step, new.history) == ('1.4', 1, {'_values': {}})
  [signature] = new.input_signature
  assert signature.shape == (2, 8) and signature.dtype == np.int32


def test_generation_mismatch_lists_every_path_and_loads_nothing():
  path, x, _ = _fixture('v14_transformer_lm')
  model = TransformerLM(16, mode='eval', **LM)  # the Trax 1.2 form
  model.init(ShapeDtype(x.shape, x.dtype))
  before = [np.asarray(a) for a in jax.tree.leaves(model.weights)]
  with pytest.raises(CheckpointError) as info:
    model.init_from_file(path)
  message = str(info.value)
  assert message.startswith(f'{path}: the Trax weights do not fit the model (22 arrays in the '
                            f'file, 18 in the model)')
  assert '[3]: Trax weights #1 is (16, 8) float32, the model expects (1, 16, 8) float32' in message
  assert 'Trax weights #21 ((16,) float32): left over, the model has no place for it' in message
  for a, b in zip(before, jax.tree.leaves(model.weights)):
    np.testing.assert_array_equal(a, b)


def test_missing_side_file_and_corrupted_files_are_named(tmp_path):
  source = os.path.join(FIXTURES, 'v14_mlp', 'model.pkl.gz')
  lonely = tmp_path / 'model.pkl.gz'
  lonely.write_bytes(open(source, 'rb').read())
  with pytest.raises(CheckpointError, match='model.pkl.gz.npy: the Trax weights side file is '
                     'missing'):
    trax_import.import_trax(lonely)
  truncated = tmp_path / 'model.pkl'
  truncated.write_bytes(open(_fixture('v12_mlp')[0], 'rb').read()[:300])
  with pytest.raises(CheckpointError, match='model.pkl: cannot read the pickled Trax checkpoint'):
    trax_import.import_trax(truncated)
  broken = tmp_path / 'broken.pkl.gz'
  broken.write_bytes(gzip.compress(b'\x80\x04' + b'x' * 50)[:20])
  with pytest.raises(CheckpointError, match='broken.pkl.gz: the gzip data is truncated'):
    trax_import.import_trax(broken)


def test_a_pickle_that_is_no_trax_checkpoint_is_refused(tmp_path):
  path = tmp_path / 'model.pkl'
  path.write_bytes(pickle.dumps({'weights': ()}))
  with pytest.raises(
      CheckpointError, match=r'model.pkl: the file is a Python pickle but not a '
      r"Trax checkpoint: .* found \['weights'\]"):
    trax_import.import_trax(path)


# ------------------------------------------------------------------ no code runs


class _Payload:
  """Unpickling this would create `marker` (via `open`)."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (open, (str(self.marker), 'w'))


def _global_pickle(module, name, marker):
  """A protocol-0 pickle calling `module.name('touch <marker>')`."""
  return f"c{module}\n{name}\n(S'touch {marker}'\ntR.".encode()


@pytest.mark.parametrize('module, name', [
    ('os', 'system'),
    ('posix', 'system'),
    ('builtins', 'eval'),
    ('builtins', 'exec'),
    ('builtins', 'getattr'),
    ('subprocess', 'Popen'),
    ('trax.layers.base', 'Layer'),
    ('numpy', 'load'),
    ('jax._src.array', 'ArrayImpl'),
    ('collections', 'OrderedDict'),
])
def test_every_other_global_is_refused_by_name_without_running(tmp_path, module, name):
  marker = tmp_path / 'pwned'
  path = tmp_path / 'model.pkl'
  path.write_bytes(_global_pickle(module, name, marker))
  with pytest.raises(
      CheckpointError, match=f'model.pkl: refused to load the global '
      f'{module}.{name} named in the pickle'):
    trax_import.import_trax(path)
  assert not marker.exists()


@pytest.mark.parametrize('gzipped', [False, True])
def test_malicious_trax_checkpoint_never_runs_through_init_from_file(tmp_path, gzipped):
  marker = tmp_path / 'pwned'
  data = pickle.dumps({'step': 1, 'weights': _Payload(marker), 'state': ()}, protocol=4)
  path = tmp_path / ('model.pkl.gz' if gzipped else 'model.pkl')
  path.write_bytes(gzip.compress(data) if gzipped else data)
  model = MLP(d_hidden=4, n_hidden_layers=1, n_output_classes=2)
  model.init(ShapeDtype((1, 3)))
  with pytest.raises(CheckpointError, match=r'refused to load the global io\.open named in'):
    model.init_from_file(path)
  assert not marker.exists()


def test_plain_numpy_pickles_are_read_and_object_arrays_refused():
  tree = {
      'a': np.arange(6, dtype=np.int64).reshape(2, 3), 'f': np.asfortranarray(np.ones(
          (2, 3), '>f4')), 's': np.float32(1.5), 'e': np.zeros((0, 4), np.float16)
  }
  for protocol in (2, 4, 5):
    got = trax_import.loads(pickle.dumps(tree, protocol=protocol))
    for key, value in tree.items():
      np.testing.assert_array_equal(got[key], value)
      assert np.asarray(got[key]).dtype == np.asarray(value).dtype
  with pytest.raises(CheckpointError, match='is not numeric'):
    trax_import.loads(pickle.dumps(np.array([None, 1], dtype=object)))


def test_side_file_records_are_read_without_pickle_and_bfloat16_bits_fill(tmp_path):
  layer = PositionalEncoding14(max_len=4, use_bfloat16=True)
  layer.init(ShapeDtype((1, 2, 3)))
  table = np.arange(12, dtype=np.float32).reshape(4, 3).astype(ml_dtypes.bfloat16)
  side = tmp_path / 'model.weights.npy.gz'
  with gzip.open(side, 'wb') as f:
    np.save(f, table.view(np.uint16), allow_pickle=False)  # Trax 1.4's `_to_bits`
  (tmp_path / 'model.pkl.gz').write_bytes(
      gzip.compress(pickle.dumps({'step': 3, 'flat_weights': 2, 'flat_state': []})))
  layer.init_from_file(tmp_path / 'model.pkl.gz')
  assert layer.weights.dtype == ml_dtypes.bfloat16
  np.testing.assert_array_equal(np.asarray(layer.weights, np.float32),
                                np.asarray(table, np.float32))
  with gzip.open(side, 'wb') as f:
    f.write(b'\x93NUMPY\x01\x00')  # a record cut short
  with pytest.raises(CheckpointError, match='model.weights.npy.gz: cannot read the Trax arrays'):
    trax_import.read_npy_records(side)
  buffer = io.BytesIO()
  np.save(buffer, np.array([{'x': 1}], dtype=object), allow_pickle=True)
  side.write_bytes(gzip.compress(buffer.getvalue()))
  with pytest.raises(CheckpointError, match='Object arrays cannot be loaded'):
    trax_import.read_npy_records(side)


def test_an_uninitialised_model_is_initialised_from_a_trax_14_file():
  """Trax 1.4's checkpoint records its input signature: init_from_file needs no init first."""
  folder = os.path.join(FIXTURES, 'v14_mlp')
  model = MODELS['v14_mlp']('eval')
  assert not model.initialized
  model.init_from_file(os.path.join(folder, 'model.pkl.gz'))
  x = np.load(os.path.join(folder, 'input.npy'))
  np.testing.assert_allclose(model(x), np.load(os.path.join(folder, 'output.npy')), atol=1e-5)
