"""The model registry: lookup by name, registration, and the unknown-name message."""

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
  with pytest.raises(ConfigError, match=r"^unknown model 'mlp' \(did you mean 'MLP'\?\); "
                                        r"known models: .*GRULM, MLP, "):
    registry.get_model('mlp')


@pytest.mark.usefixtures('fresh_registry')
def test_register_as_call_and_decorator():
  def TinyModel(mode='train'):  # pylint: disable=invalid-name
    return MLP(d_hidden=2, n_hidden_layers=1, n_output_classes=2, mode=mode)

  assert registry.register(TinyModel) is TinyModel
  assert registry.register(TinyModel) is TinyModel               # again: no error
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

  with pytest.raises(ConfigError, match=r"register: model name 'MLP' is already taken by "
                                        r"minitrax\.models\.mlp\.MLP; pick another name"):
    registry.register(MLP)
  with pytest.raises(ConfigError, match=r'register: a model must be a function returning a '
                                        r'layer, got 3'):
    registry.register(3)
  with pytest.raises(ConfigError, match=r"register: the model name must be a non-empty "
                                        r"string, got ''"):
    registry.register(MLP, name='')
