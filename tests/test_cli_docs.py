"""docs/cli.md: every command parses, builds its model and trains one step, in one subprocess.

Datasets that would be downloaded are replaced by mock data of the same kind, big models by
small ones (appended `--config` bindings win); MNIST commands read tests/data/mnist.
"""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'supervised'))
from codelab_source import subprocess_env  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLI_MD = os.path.join(HERE, '..', 'docs', 'cli.md')
RUNNER = os.path.join(HERE, 'cli_matrix_run.py')
MNIST = os.path.join(HERE, 'data', 'mnist')

_IMAGES = lambda shape, top: [
    'train.inputs=@random_inputs', f'random_inputs.input_shape={shape}',
    f'random_inputs.output_shape=({shape[0]},)', f'random_inputs.output_range=(0, {top})'
]
MOCK_DATA = {
    'mnist':
        _IMAGES((8, 28, 28, 1), 9),
    'emnist/letters':
        _IMAGES((8, 28, 28, 1), 36),
    'cifar10':
        _IMAGES((2, 32, 32, 3), 9),
    'imagenet2012':
        _IMAGES((2, 32, 32, 3), 999),
    'imdb_reviews': [
        'train.inputs=@random_inputs', 'random_inputs.input_shape=(2, 32)',
        "random_inputs.input_dtype='int32'", 'random_inputs.input_range=(1, 257)',
        'random_inputs.output_shape=(2,)', 'random_inputs.output_range=(0, 1)'
    ],
    'lm1b': [
        'train.inputs=@copy_inputs', 'copy_inputs.vocab_size=258', 'copy_inputs.length=16',
        'copy_inputs.batch_size=2'
    ],
}
_SMALL_TRANSFORMER = lambda name: [
    f'{name}.{p}' for p in ('d_model=16', 'd_ff=32', 'n_layers=1', 'n_heads=2')
]
SMALL_MODELS = {
    'MLP': ['MLP.d_hidden=32'], 'Resnet50': ['Resnet50.d_hidden=4'],
    'WideResnet': ['WideResnet.n_blocks=1', 'WideResnet.widen_factor=1'],
    'TransformerLM': _SMALL_TRANSFORMER('TransformerLM'),
    'TransformerEncoder': _SMALL_TRANSFORMER('TransformerEncoder'),
    'RNNLM': ['RNNLM.d_model=16', 'RNNLM.n_layers=1'], 'GRULM': []
}
CONFIG_FILES = {  # shipped config -> (dataset, model)
    'transformer_copy': ('copy', 'TransformerLM'), 'mlp_mnist': ('mnist', 'MLP'),
    'wide_resnet_cifar10_8gb': ('cifar10', 'WideResnet'),
    'resnet50_imagenet_8gb': ('imagenet2012', 'Resnet50'), 'transformer_imdb_8gb':
        ('imdb_reviews', 'TransformerEncoder'), 'transformer_lm1b_8gb': ('lm1b', 'TransformerLM'),
    'lstm_lm1b': ('lm1b', 'RNNLM')
}


def commands():
  """The `python -m minitrax.trainer` commands of docs/cli.md's ```sh blocks, as flag lists."""
  with open(CLI_MD, encoding='utf-8') as f:
    blocks = re.findall(r'```sh\n(.*?)```', f.read(), re.S)
  out = []
  for line in filter(str.strip, '\n'.join(blocks).splitlines()):
    words = shlex.split(line)
    assert words[:3] == ['python', '-m', 'minitrax.trainer'], line
    out.append(words[3:])
  return out


@pytest.mark.slow
def test_run_each_command_for_one_step(tmp_path):
  runs = []
  for i, flag_list in enumerate(commands()):
    values = dict(f[2:].split('=', 1) for f in flag_list if '=' in f)
    dataset, model = CONFIG_FILES.get(values.get('config_file'), (None, None))
    dataset, model = values.get('dataset', dataset), values.get('model', model)
    mock = []
    if values.get('data_dir', '').endswith('shared/data/mnist'):
      flag_list = [f'--data_dir={MNIST}' if f.startswith('--data_dir') else f for f in flag_list]
    else:
      mock = MOCK_DATA.get(dataset, [])
    extra = mock + SMALL_MODELS[model] + [
        'train.steps=1', 'train.train_steps=1', 'train.eval_steps=0'
    ]
    runs.append([f'{i}_{model}', flag_list + [f'--config={b}' for b in extra]])
  assert len(runs) == 14
  (tmp_path / 'commands.json').write_text(json.dumps(runs))
  out = subprocess.run(
      [sys.executable, RUNNER,
       str(tmp_path), '--commands',
       str(tmp_path / 'commands.json')], env=subprocess_env(HOME=str(tmp_path)),
      capture_output=True, text=True, timeout=1200)
  assert out.returncode == 0, out.stderr[-3000:]
  results = [line for line in out.stdout.splitlines() if line.startswith('RUN ')]
  assert len(results) == len(runs), out.stdout[-3000:]
  for (name, flag_list), line in zip(runs, results):
    assert re.fullmatch(rf'RUN {name} ok 1 \d+', line), (flag_list, line)
