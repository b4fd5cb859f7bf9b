"""Tests for minitrax/shortcuts.py: what `--dataset` gives `--model`, and the pairs refused."""

import os
import re
import subprocess
import sys

import pytest

from minitrax import shortcuts
from minitrax.errors import ConfigError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'supervised'))
from codelab_source import subprocess_env  # noqa: E402

MATRIX_RUN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cli_matrix_run.py')
SHARED_MNIST = os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'mnist')
LMS = ('TransformerLM', 'ReformerLM', 'RNNLM', 'GRULM')
REFUSED = {(d, 'MLP') for d in ('copy', 'reverse', 'addition')} | {('mnist', m) for m in LMS}


def run_pairs(pairs, tmp_path):
  """`{(dataset, model): line}` of tests/cli_matrix_run.py over `pairs`, in one subprocess."""
  out = subprocess.run([sys.executable, MATRIX_RUN, str(tmp_path)] + [f'{d}:{m}' for d, m in pairs],
                       env=subprocess_env(HOME=str(tmp_path)), capture_output=True, text=True,
                       timeout=1200)
  assert out.returncode == 0, out.stderr[-3000:]
  lines = [line.split(' ', 3) for line in out.stdout.splitlines() if line.startswith('PAIR ')]
  return {(d, m): rest for _, d, m, rest in lines}


def check_results(results, tmp_path):
  for (dataset, model), result in results.items():
    if (dataset, model) in REFUSED:
      assert re.fullmatch(
          rf'error: minitrax\.trainer: error: ConfigError: --model={model} cannot train on '
          rf'--dataset={dataset}: {model} .*; models that fit: .*', result), result
      assert not os.path.exists(tmp_path / f'{dataset}_{model}')  # Refused before any computation.
    else:
      status, step, n_weights = result.split()
      assert (status, step) == ('ok', '1'), result
      if model in LMS:  # Small defaults on the synthetic tasks.
        assert int(n_weights) < 40_000, result


def test_copy_gives_a_language_model_its_vocabulary_weights_and_small_sizes():
  assert shortcuts.defaults('copy', 'TransformerLM') == [
      'vocab_size = 32', 'has_weights = True', 'copy_inputs.vocab_size = %vocab_size',
      'train.has_weights = %has_weights', 'TransformerLM.vocab_size = %vocab_size',
      'TransformerLM.d_model = 32', 'TransformerLM.d_ff = 128', 'TransformerLM.n_layers = 2',
      'TransformerLM.n_heads = 4', 'TransformerLM.max_len = 256'
  ]


def test_mnist_gives_the_classifier_its_classes_batch_and_optimizer():
  bindings = shortcuts.defaults('mnist', 'MLP')
  assert bindings[:2] == ['n_classes = 10', 'has_weights = False']
  assert 'MLP.n_output_classes = %n_classes' in bindings
  assert 'inputs.batch_size_per_device = 256' in bindings and 'train.optimizer = @Adam' in bindings
  assert not any(b.startswith('MLP.d_') for b in bindings)  # Real data: the model keeps its sizes.
  assert 'n_classes = 37' in shortcuts.defaults('emnist/letters:3.1.0', 'MLP')


def test_unknown_datasets_and_models_get_no_check():
  assert shortcuts.defaults('coco', 'TransformerLM') == []
  assert shortcuts.defaults('lm1b', 'MyNet')[-1] == 'train.has_weights = %has_weights'
  assert shortcuts.check_pair('random', 'TransformerEncoder') is None


def test_a_text_classifier_on_images_is_refused_in_one_line():
  with pytest.raises(ConfigError) as error:
    shortcuts.defaults('cifar10', 'TransformerEncoder')
  assert str(error.value) == (
      '--model=TransformerEncoder cannot train on --dataset=cifar10: TransformerEncoder '
      "classifies token sequences into n_classes, but cifar10's examples are images with one "
      'class each; models that fit: MLP, Resnet50, WideResnet')


def test_each_model_and_dataset_once_through_the_command_line(tmp_path):
  """copy/reverse/addition/random/mnist x MLP and the four LMs: one step each, refusals."""
  pairs = [('copy', 'TransformerLM'), ('reverse', 'ReformerLM'), ('addition', 'RNNLM'),
           ('random', 'GRULM'), ('random', 'MLP'), ('mnist', 'MLP')] + sorted(REFUSED)
  results = run_pairs(pairs, tmp_path)
  assert set(results) == set(pairs)
  check_results(results, tmp_path)


@pytest.mark.slow
def test_the_whole_dataset_model_matrix(tmp_path):
  pairs = [
      (d, m) for d in ('copy', 'reverse', 'addition', 'random', 'mnist') for m in ('MLP',) + LMS
  ]
  results = run_pairs(pairs, tmp_path)
  assert set(results) == set(pairs)
  check_results(results, tmp_path)
