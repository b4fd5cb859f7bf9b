"""What `--dataset` tells the model: vocabulary, classes, loss weights; which pairs can work.

A dataset shortcut (`--dataset=copy`, `--dataset=mnist`, ...) fixes what the
model must match: the number of token ids (`vocab_size`), of classes
(`n_classes`) and whether batches carry loss weights (`has_weights`). These
are gin macros, bound before any config file, so a file or `--config`
binding (`--config="vocab_size=64"`, `--config="MLP.n_output_classes=5"`)
still wins:

    vocab_size = 32
    has_weights = True
    copy_inputs.vocab_size = %vocab_size
    TransformerLM.vocab_size = %vocab_size
    train.has_weights = %has_weights

On the synthetic tasks, sequence models also get small sizes (d_model 32,
2 layers), as the codelab's; an image classifier keeps its own. A pair that
cannot work (an image classifier on a language-model task, a language model
on images) is refused by `check_pair` in one line naming both and the models
that fit. Datasets and models not listed here (other TFDS datasets, models
you register) get no defaults and no check.

>>> defaults('copy', 'GRULM')[:3]
['vocab_size = 32', 'has_weights = True', 'copy_inputs.vocab_size = %vocab_size']
>>> check_pair('copy', 'MLP')
Traceback (most recent call last):
...
minitrax.errors.ConfigError: --model=MLP cannot train on --dataset=copy: MLP classifies whole \
images into n_output_classes, but copy's targets are token sequences; models that fit: \
TransformerLM, ReformerLM, RNNLM, GRULM
"""

import dataclasses

from minitrax.errors import ConfigError

__all__ = ['Dataset', 'DATASETS', 'MODEL_KINDS', 'SMALL_MODELS', 'check_pair', 'defaults']

# What a model takes and predicts, by kind.
LM, IMAGES, TEXT_CLASSES, RANDOM = 'lm', 'images', 'text_classes', 'random'
MODEL_KINDS = {
    'MLP': IMAGES, 'Resnet50': IMAGES, 'WideResnet': IMAGES, 'TransformerEncoder': TEXT_CLASSES,
    'TransformerLM': LM, 'ReformerLM': LM, 'RNNLM': LM, 'GRULM': LM
}
_MODEL_DOES = {
    IMAGES: 'classifies whole images into n_output_classes',
    TEXT_CLASSES: 'classifies token sequences into n_classes',
    LM: 'predicts the next token of a token sequence'
}
_DATA_IS = {
    IMAGES: "'s examples are images with one class each",
    TEXT_CLASSES: "'s examples are texts with one class each", LM: "'s targets are token sequences"
}
# The parameters a model of each kind takes the dataset's sizes in.
_MODEL_MACROS = {
    IMAGES: {'n_output_classes': 'n_classes'},
    TEXT_CLASSES: {'vocab_size': 'vocab_size',
                   'n_classes': 'n_classes'}, LM: {'vocab_size': 'vocab_size'}
}
# Sizes of sequence models trained on the synthetic tasks (the codelab's scale: seconds a step
# would otherwise be spent on a 512-wide, 6-layer default model).
SMALL_MODELS = {
    'TransformerLM': {'d_model': 32, 'd_ff': 128, 'n_layers': 2, 'n_heads': 4, 'max_len': 256},
    'ReformerLM': {
        'd_model': 32, 'd_ff': 128, 'n_layers': 2, 'n_heads': 2, 'd_attention_key': 16,
        'd_attention_value': 16, 'max_len': 256
    },
    'RNNLM': {'d_model': 32, 'n_layers': 2},
    'GRULM': {'d_model': 32},
    'TransformerEncoder': {'d_model': 32, 'd_ff': 128, 'n_layers': 2, 'n_heads': 4, 'max_len': 256},
}
# `--dataset=random` for token models: int ids in [0, vocab_size), 16 sequences of 16.
_RANDOM_TOKENS = [
    'random_inputs.input_shape = (16, 16)', "random_inputs.input_dtype = 'int32'",
    'random_inputs.input_range = (0, 31)'
]
_RANDOM_LM = _RANDOM_TOKENS + [
    'random_inputs.output_shape = (16, 16)', 'random_inputs.output_range = (0, 31)'
]
# MNIST-like sets: batches of 256 (as Trax's mlp_mnist), Adam at 1e-3 after 100 warm-up steps
# (MLP, 1000 steps on 8,000 test images: 96.2% on the other 2,000; Adafactor's 0.1: 95.1%).
_MNIST_TRAINING = [
    'inputs.batch_size_per_device = 256', 'inputs.eval_batch_size = 256', 'train.optimizer = @Adam',
    'MultifactorSchedule.constant = 0.001',
    "MultifactorSchedule.factors = 'constant * linear_warmup'",
    'MultifactorSchedule.warmup_steps = 100'
]


@dataclasses.dataclass(frozen=True)
class Dataset:
  """What one `--dataset` shortcut holds.

  Args:
    kind: 'lm' (token sequences, targets the same), 'images' (a class per
      image), 'text_classes' (a class per text) or 'random' (fits any model).
    vocab_size: token ids the data uses (None for images).
    n_classes: classes of the targets (None for language-model data).
    has_weights: batches are `(inputs, targets, weights)`.
    synthetic: generated offline (small model sizes apply).
    bindings: further gin bindings of the data (batch sizes, lengths).
  """
  kind: str
  vocab_size: int | None = None
  n_classes: int | None = None
  has_weights: bool = False
  synthetic: bool = False
  bindings: tuple = ()


def _images(n_classes, bindings=()):
  return Dataset(IMAGES, n_classes=n_classes, bindings=tuple(bindings))


DATASETS = {
    'copy': Dataset(LM, 32, None, True, True, ('copy_inputs.vocab_size = %vocab_size',)),
    'reverse': Dataset(LM, 32, None, True, True, ('reverse_inputs.vocab_size = %vocab_size',)),
    'addition': Dataset(LM, 13, None, True, True, ('addition_inputs.vocab_size = %vocab_size',)),
    'random': Dataset(RANDOM, 32, 10, False, True),
    **{name: _images(10, _MNIST_TRAINING) for name in ('mnist', 'fashion_mnist', 'kmnist')},
    'emnist': _images(62, _MNIST_TRAINING),
    'emnist/byclass': _images(62, _MNIST_TRAINING),
    'emnist/bymerge': _images(47, _MNIST_TRAINING),
    'emnist/balanced': _images(47, _MNIST_TRAINING),
    'emnist/letters': _images(37, _MNIST_TRAINING),
    'emnist/digits': _images(10, _MNIST_TRAINING),
    'emnist/mnist': _images(10, _MNIST_TRAINING),
    'cifar10': _images(10),
    'cifar100': _images(100),
    'imdb_reviews': Dataset(TEXT_CLASSES, 258, 2, bindings=('inputs.max_length = 512',)),
    'lm1b': Dataset(LM, 258, None, True, bindings=('inputs.pad_to_length = 256',)),
}


def _lookup(dataset):
  """The shortcut of `dataset` ('mnist:3.0.1' is 'mnist'), or None."""
  return DATASETS.get((dataset or '').split(':')[0])


def check_pair(dataset, model):
  """Raises `ConfigError` (one line) if `model` cannot train on `dataset`; else returns None.

  Args:
    dataset: a `--dataset` value (synthetic task or TFDS name), or None.
    model: a registered model name, or None.
  """
  data, kind = _lookup(dataset), MODEL_KINDS.get(model)
  if data is None or kind is None or data.kind in (RANDOM, kind):
    return
  fits = [name for name, k in MODEL_KINDS.items() if k == data.kind]
  raise ConfigError(f'--model={model} cannot train on --dataset={dataset}: {model} '
                    f'{_MODEL_DOES[kind]}, but {dataset}{_DATA_IS[data.kind]}; models that '
                    f'fit: {", ".join(fits)}')


def defaults(dataset, model):
  """The gin bindings `dataset` gives `model`, to parse before the config files.

  Args:
    dataset: a `--dataset` value, or None.
    model: a registered model name, or None.

  Returns:
    A list of gin binding strings (empty for an unknown dataset).

  Raises:
    ConfigError: the pair cannot work (see `check_pair`).
  """
  check_pair(dataset, model)
  data = _lookup(dataset)
  if data is None:
    return []
  out = [
      f'{name} = {value}' for name, value in (('vocab_size', data.vocab_size),
                                              ('n_classes', data.n_classes), ('has_weights',
                                                                              data.has_weights))
      if value is not None
  ]
  out += list(data.bindings) + ['train.has_weights = %has_weights']
  kind = MODEL_KINDS.get(model)
  if kind is None:
    return out
  if data.kind == RANDOM and kind != IMAGES:
    out += _RANDOM_LM if kind == LM else _RANDOM_TOKENS
  out += [f'{model}.{param} = %{macro}' for param, macro in _MODEL_MACROS[kind].items()]
  if data.synthetic:
    out += [f'{model}.{param} = {value}' for param, value in SMALL_MODELS.get(model, {}).items()]
  return out
