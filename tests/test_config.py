"""Tests for minitrax/config.py: gin registrations, flat `train` bindings, shipped configs.

Each shipped config parses, builds its model and trains a step on mock data.
"""

import os

import pytest

from minitrax import checkpoint
from minitrax import config
from minitrax.errors import ConfigError
from minitrax.shapes import ShapeDtype

CONFIGS = [
    'mlp_mnist', 'resnet50_imagenet_8gb', 'wide_resnet_cifar10_8gb', 'transformer_lm1b_8gb',
    'transformer_imdb_8gb', 'transformer_copy', 'lstm_lm1b'
]

# Mock or synthetic data of the right kind, and smaller models, for one step on a CPU.
MOCK = {
    'mlp_mnist': [
        'train.inputs = @random_inputs', 'random_inputs.input_shape = (8, 28, 28, 1)',
        'random_inputs.output_shape = (8,)', 'MLP.d_hidden = 32'
    ],
    'resnet50_imagenet_8gb': [
        'train.inputs = @random_inputs', 'random_inputs.input_shape = (2, 32, 32, 3)',
        'random_inputs.output_shape = (2,)', 'random_inputs.output_range = (0, 999)',
        'Resnet50.d_hidden = 4'
    ],
    'wide_resnet_cifar10_8gb': [
        'train.inputs = @random_inputs', 'random_inputs.input_shape = (2, 32, 32, 3)',
        'random_inputs.output_shape = (2,)', 'WideResnet.n_blocks = 1',
        'WideResnet.widen_factor = 1'
    ],
    'transformer_lm1b_8gb': [
        'train.inputs = @copy_inputs', 'copy_inputs.vocab_size = 258', 'copy_inputs.length = 16',
        'copy_inputs.batch_size = 2', 'TransformerLM.d_model = 16', 'TransformerLM.d_ff = 32',
        'TransformerLM.n_layers = 1', 'TransformerLM.n_heads = 2'
    ],
    'transformer_imdb_8gb': [
        'train.inputs = @random_inputs', 'random_inputs.input_shape = (2, 32)',
        "random_inputs.input_dtype = 'int32'", 'random_inputs.input_range = (1, 257)',
        'random_inputs.output_shape = (2,)', 'random_inputs.output_range = (0, 1)',
        'TransformerEncoder.d_model = 16', 'TransformerEncoder.d_ff = 32',
        'TransformerEncoder.n_layers = 1', 'TransformerEncoder.n_heads = 2'
    ],
    'transformer_copy': [],
    'lstm_lm1b': [
        'train.inputs = @copy_inputs', 'copy_inputs.vocab_size = 258', 'copy_inputs.length = 16',
        'copy_inputs.batch_size = 2', 'RNNLM.d_model = 16', 'RNNLM.n_layers = 1'
    ],
}
MODELS = {
    'mlp_mnist': 'MLP', 'resnet50_imagenet_8gb': 'Resnet50',
    'wide_resnet_cifar10_8gb': 'WideResnet', 'transformer_lm1b_8gb': 'TransformerLM',
    'transformer_imdb_8gb': 'TransformerEncoder', 'transformer_copy': 'TransformerLM',
    'lstm_lm1b': 'RNNLM'
}


def test_all_configs_are_shipped():
  assert config.shipped_configs() == sorted(CONFIGS)


@pytest.mark.parametrize('name', CONFIGS)
def test_config_parses_as_shipped(name):
  config.parse([name])
  assert config.reference_name(config.query('train.model')) == MODELS[name]
  assert config.query('train.steps') > 0


# ResNet-50's step takes about 20 s to compile on a laptop CPU: `-m slow` runs it.
# transformer_copy trains (and decodes) in test_cli.py::test_demo_trains_then_decodes.
ONE_STEP = [
    pytest.param(name, marks=pytest.mark.slow) if name == 'resnet50_imagenet_8gb' else name
    for name in CONFIGS
    if name != 'transformer_copy'
]


@pytest.mark.parametrize('name', ONE_STEP)
def test_config_trains_one_step_on_mock_data(name, tmp_path):
  config.parse([name],
               MOCK[name] + ['train.steps = 1', 'train.eval_steps = 1', 'train.eval_frequency = 1'])
  state = config.train(output_dir=str(tmp_path), config_text=config.operative_config)
  assert state.step == 1
  saved = checkpoint.load(str(tmp_path / 'model.pkl'))
  assert saved['step'] == 1 and saved['history']['eval']['metrics/loss']
  assert f'train.model = @{MODELS[name]}' in (tmp_path / 'config.gin').read_text()


def test_resnet50_config_builds_its_model_on_mock_data():
  """The fast part of the (slow) one-step test: the configured model's output shape."""
  config.parse(['resnet50_imagenet_8gb'], MOCK['resnet50_imagenet_8gb'])
  model = config.query('train.model').scoped_configurable_fn(mode='train')
  signature = model.output_signature(ShapeDtype((2, 32, 32, 3)))
  assert signature.shape == (2, 1000)


def test_bindings_configure_the_default_optimizer_and_schedule():
  config.parse([], ['Adafactor.factored = False', 'MultifactorSchedule.constant = 0.5'])
  assert not config.query('train.optimizer').scoped_configurable_fn()._factored
  schedule = config.query('train.lr_schedule').scoped_configurable_fn(None)
  assert abs(float(schedule(400)['learning_rate']) - 0.5 / 20) < 1e-7


def test_config_path_takes_names_and_paths(tmp_path):
  shipped = config.config_path('mlp_mnist')
  assert shipped == os.path.join(config.CONFIGS_DIR, 'mlp_mnist.gin')
  assert config.config_path('mlp_mnist.gin') == shipped
  mine = tmp_path / 'mine.gin'
  mine.write_text('train.steps = 3\n')
  assert config.config_path(str(mine)) == str(mine)
  with pytest.raises(
      ConfigError, match=r"config file 'mlp_mnis' not found \(did you mean "
      r"'mlp_mnist'\?\); give a path or one of the shipped configs: lstm_lm1b"):
    config.config_path('mlp_mnis')


def test_bad_bindings_name_the_culprit():
  with pytest.raises(ConfigError, match=r"Configurable 'train' doesn't have a parameter named "
                     r"'no_such'"):
    config.parse([], ['train.no_such = 1'])
  with pytest.raises(
      ConfigError, match=r"(?s)No configurable matching reference '@NoNet'.*"
      r'Known models: .*TransformerLM'):
    config.parse([], ['train.model = @NoNet'])


def test_flat_train_bindings_fill_the_grouped_settings(monkeypatch):
  seen = {}
  monkeypatch.setattr(config, '_train', lambda *args: seen.setdefault('args', args))
  config.parse([], [
      'train.model = @MLP', 'train.inputs = @copy_inputs', 'train.steps = 7',
      'train.train_steps = 9', 'train.has_weights = True', 'train.eval_steps = 2',
      'train.id_to_mask = 0', "train.checkpoint_lowest = 'loss'"
  ])
  config.train(output_dir='/tmp/unused')
  objective, plan = seen['args'][5:7]
  assert (objective.has_weights, objective.id_to_mask) == (True, 0)
  assert (plan.steps, plan.eval_steps, plan.checkpoint_lowest) == (9, 2, 'loss')


def test_flat_train_bindings_are_checked_before_any_computation():
  config.parse([], ['train.model = @MLP', 'train.inputs = @copy_inputs', "train.steps = 'abc'"])
  with pytest.raises(ConfigError, match=r"train: steps must be an int >= 1, got 'abc'"):
    config.train(output_dir='/tmp/unused')


def test_every_model_is_a_configurable():
  from minitrax.models import registry
  assert set(config.MODELS) == set(registry.model_names())
  config.parse([], ['MLP.d_hidden = 3'])
  assert config.query('MLP.d_hidden') == 3
  assert config.reference_name(config.query('train.optimizer')) == 'Adafactor'


@pytest.mark.parametrize('binding,message', [
    ("train.steps = 'abc'", "train: steps must be an int >= 1, got 'abc'"),
    ('train.steps = 0', 'train: steps must be an int >= 1, got 0'),
    ('train.steps = -5', 'train: steps must be an int >= 1, got -5'),
    ('train.train_steps = 2.5', 'train: train_steps must be an int >= 1, got 2.5'),
    ('train.eval_steps = -1', 'train: eval_steps must be an int >= 0, got -1'),
    ("train.eval_frequency = '10'", "train: eval_frequency must be an int >= 0, got '10'"),
    ('train.random_seed = -1', 'train: random_seed must be an int >= 0, got -1'),
    ('train.n_devices = 0', 'train: n_devices must be an int >= 1, got 0'),
    ('train.checkpoints_at = 5', 'train: checkpoints_at must be None or a list of steps, got 5'),
    ('train.checkpoint_lowest = 3',
     'train: checkpoint_lowest must be None or a metric name, got 3'),
    ("train.has_weights = 'yes'", "train: has_weights must be True or False, got 'yes'"),
    ('train.metrics = [1]', 'train: metrics must be None or a dict {name: factory or layer}, got '
     r'\[1\]'),
    ('train.model = 3', 'train: model must be a function of mode returning a layer, or a layer, '
     'got 3'),
])
def test_bad_train_values_are_config_errors_before_anything_is_written(binding, message, tmp_path):
  config.parse([], ['train.model = @MLP', 'train.inputs = @copy_inputs', binding])
  with pytest.raises(ConfigError, match=message):
    config.train(output_dir=str(tmp_path / 'out'))
  assert not (tmp_path / 'out').exists()


def test_gin_syntax_error_in_a_file_names_the_file_line_and_binding(tmp_path):
  path = tmp_path / 'bad.gin'
  path.write_text('train.steps = 3\ntrain.eval_steps = (1,\nMLP.d_hidden = 8\n')
  with pytest.raises(ConfigError) as e:
    config.parse([str(path)])
  assert str(e.value) == (f"bad gin configuration: syntax error in config file '{path}', line 2: "
                          'not a literal value (a number, string, tuple, list, dict, @reference): '
                          "'train.eval_steps = (1,'")
  path.write_text('train.steps = 3\n\ntrain.eval_steps = [1,\n  2\n')  # unclosed at the end
  with pytest.raises(
      ConfigError, match=r"config file '.*bad.gin', line 3: an unclosed bracket or "
      r"string: 'train.eval_steps = \[1,'$"):
    config.parse([str(path)])


@pytest.mark.parametrize('binding,reason', [
    ('train.steps = (', 'an unclosed bracket or string'),
    ('train.steps 3', "Couldn't parse statement, expected ':' or '='"),
    ('train.steps = 1 2', 'Expected newline'),
])
def test_gin_syntax_error_in_a_binding_is_one_line_naming_it(binding, reason):
  with pytest.raises(ConfigError) as e:
    config.parse([], ['train.steps = 2', binding, 'train.eval_steps = 1'])
  assert str(e.value) == f'bad gin configuration: syntax error in binding {binding!r}: {reason}'


def test_unknown_parameter_in_a_file_names_the_file_and_line_in_one_paragraph(tmp_path):
  path = tmp_path / 'typo.gin'
  path.write_text('train.steps = 3\ntrain.no_param = 1\n')
  with pytest.raises(ConfigError) as e:
    config.parse([str(path)])
  assert str(e.value) == ("bad gin configuration: Configurable 'train' doesn't have a parameter "
                          f"named 'no_param'. (config file '{path}', line 2: 'train.no_param = 1')")


SAVED = """# Parameters for MLP:
# ==============================================================================
MLP.d_hidden = 32
MLP.n_hidden_layers = 2

# Parameters for train:
# ==============================================================================
train.eval_steps = 10
train.model = @MLP
train.optimizer = @Adafactor
train.random_seed = None
train.steps = 100
"""


def test_config_drift_lists_changed_bindings_but_not_the_run_length():
  config.parse([], ['train.model = @MLP', 'MLP.d_hidden = 32', 'train.steps = 500'])
  assert config.config_drift(SAVED) == []  # defaults (n_hidden_layers, eval_steps) match
  config.parse([], [
      'train.model = @MLP', 'MLP.d_hidden = 64', 'train.optimizer = @Adam', 'train.random_seed = 3',
      'train.eval_steps = 10'
  ])
  assert config.config_drift(SAVED) == [('MLP.d_hidden', '32', '64'),
                                        ('train.optimizer', '@Adafactor', '@Adam'),
                                        ('train.random_seed', 'None', '3')]
  config.parse([], ['train.model = @MLP'])  # a binding removed: the default differs
  assert config.config_drift(SAVED) == [('MLP.d_hidden', '32', '512')]
