"""The model registry: lookup by name, registration, and the unknown-name message."""

import json
import os
import subprocess
import sys

import pytest

from minitrax.errors import ConfigError
from minitrax.models import registry
from minitrax.models.mlp import MLP
from minitrax.models.resnet import Resnet50, WideResnet
from minitrax.models.rnn import GRULM, RNNLM
from minitrax.shapes import ShapeDtype


@pytest.fixture
def fresh_registry(monkeypatch):
  """A copy of the registry that each test may change freely."""
  models = dict(registry._MODELS)  # pylint: disable=protected-access
  monkeypatch.setattr(registry, '_MODELS', models)


def test_builtin_models_are_registered_under_their_names():
  for fn in (MLP, Resnet50, WideResnet, RNNLM, GRULM):
    assert registry.get_model(fn.__name__) is fn
  assert {'GRULM', 'MLP', 'RNNLM', 'Resnet50', 'WideResnet'} <= set(registry.model_names())
  assert registry.model_names() == sorted(registry.model_names())


def test_get_model_returns_a_model_function():
  model = registry.get_model('MLP')(d_hidden=4, n_output_classes=3, mode='eval')
  assert model.output_signature(ShapeDtype((2, 5))) == ShapeDtype((2, 3))


def test_unknown_model_lists_the_known_ones():
  known = ', '.join(registry.model_names())
  with pytest.raises(ConfigError) as info:
    registry.get_model('Xyz')
  assert str(info.value) == f"unknown model 'Xyz'; known models: {known}"
  with pytest.raises(
      ConfigError, match=r"^unknown model 'mlp' \(did you mean 'MLP'\?\); "
      r"known models: .*GRULM, MLP, "):
    registry.get_model('mlp')


@pytest.mark.usefixtures('fresh_registry')
def test_register_as_call_and_decorator():

  def TinyModel(mode='train'):  # pylint: disable=invalid-name
    return MLP(d_hidden=2, n_hidden_layers=1, n_output_classes=2, mode=mode)

  assert registry.register(TinyModel) is TinyModel
  assert registry.register(TinyModel) is TinyModel  # again: no error
  assert registry.get_model('TinyModel') is TinyModel
  registry.register(TinyModel, name='Tiny')
  assert registry.get_model('Tiny') is TinyModel

  @registry.register
  def OtherModel():  # pylint: disable=invalid-name
    return MLP()

  assert registry.get_model('OtherModel') is OtherModel and 'OtherModel' in \
      registry.model_names()


@pytest.mark.usefixtures('fresh_registry')
def test_register_refuses_clashes_and_bad_arguments():

  def MLP():  # pylint: disable=invalid-name,redefined-outer-name
    return None

  with pytest.raises(
      ConfigError, match=r"register: model name 'MLP' is already taken by "
      r"minitrax\.models\.mlp\.MLP; pick another name"):
    registry.register(MLP)
  with pytest.raises(ConfigError, match=r'register: a model must be a function returning a '
                     r'layer, got 3'):
    registry.register(3)
  with pytest.raises(ConfigError, match=r"register: the model name must be a non-empty "
                     r"string, got ''"):
    registry.register(MLP, name='')


_EVERY_MODEL_MODULE = '''
import importlib, json, pkgutil
import minitrax.models as models
registered = models.model_names()
for info in pkgutil.iter_modules(models.__path__):
  importlib.import_module(f'minitrax.models.{info.name}')
by_module = {}
for name in models.model_names():
  by_module.setdefault(models.get_model(name).__module__, []).append(name)
print(json.dumps({'registered': registered, 'after': models.model_names(), 'by_module': by_module,
                  'modules': sorted(info.name for info in pkgutil.iter_modules(models.__path__))}))
'''


def test_importing_minitrax_models_registers_every_model_module():
  """In a fresh interpreter, `import minitrax.models` alone registers the models of every module."""
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  out = subprocess.run([sys.executable, '-c', _EVERY_MODEL_MODULE], env=env, check=True,
                       capture_output=True, text=True).stdout
  result = json.loads(out.strip().splitlines()[-1])
  assert result['registered'] == result['after']  # importing each module adds nothing
  assert result['by_module'] == {
      'minitrax.models.atari_cnn': ['AtariCnn', 'AtariCnnBody', 'FrameStackMLP'],
      'minitrax.models.mlp': ['MLP'],
      'minitrax.models.neural_gpu': ['NeuralGPU'],
      'minitrax.models.reformer': ['Reformer', 'ReformerLM'],
      'minitrax.models.resnet': ['Resnet50', 'WideResnet'],
      'minitrax.models.rnn': ['GRULM', 'RNNLM'],
      'minitrax.models.transformer': [
          'Transformer', 'TransformerDecoder', 'TransformerEncoder', 'TransformerLM'
      ],
  }
  models_modules = {f'minitrax.models.{name}' for name in result['modules']
                   } - {'minitrax.models.registry', 'minitrax.models.trax14'}
  # A new model module must register its models (trax14.py holds Trax 1.4's forms, which the
  # registry leaves to minitrax.trax14 so as not to shadow the 1.2 names).
  assert models_modules == set(result['by_module'])
