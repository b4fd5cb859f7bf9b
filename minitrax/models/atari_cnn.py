"""Small networks for Atari agents (Trax's `trax/models/atari_cnn.py`).

Inputs are frames `(batch, time, height, width, channels)` of bytes (0..255).
A frame stack puts each frame's `n_frames - 1` predecessors next to it along
the channel axis (frame t - i comes from `ShiftRight` applied i times along
time, zeros before the start), so the convolutions see short clips.

* `AtariCnn` (Trax 1.2 and 1.4): two 5x5 stride-2 'SAME' convolutions with
  `hidden_sizes` filters, then `Dense(output_size)`; ReLU after each.
* `AtariCnnBody` (Trax 1.4): the DQN body: 8x8/4, 4x4/2, 3x3/1 convolutions.
* `FrameStackMLP` (Trax 1.2 and 1.4): a frame stack, then an MLP.

All map to `(batch, time, output_size)`; `mode` is accepted and unused, as in
Trax.
"""

# Model functions are CamelCase, as in Trax.
# pylint: disable=invalid-name

from minitrax.checks import check_int, check_mode
from minitrax.errors import ArgumentError
from minitrax.layers.activation_fns import Relu
from minitrax.layers.attention import ShiftRight
from minitrax.layers.base import Fn
from minitrax.layers.combinators import Branch, Concatenate, Serial
from minitrax.layers.convolution import Conv
from minitrax.layers.core import Dense, Flatten
from minitrax.models.registry import register


def _frame_stack(n_frames):
  """(B, T, ..., C) -> (B, T, ..., n_frames * C): frames t, t-1, ..., t-n+1 side by side."""
  check_int('FrameStack', 'n_frames', n_frames)
  if n_frames == 1:
    return []
  return [
      Branch(*[[ShiftRight()] * i for i in range(n_frames)]),
      Concatenate(n_items=n_frames, axis=-1)
  ]


def _bytes_to_floats():
  return Fn('BytesToFloats', lambda x: x / 255.0)


def _widths(who, hidden_sizes, n):
  sizes = tuple(hidden_sizes)
  if len(sizes) < n:
    raise ArgumentError(f'{who}: hidden_sizes needs {n} entries, got {hidden_sizes!r}')
  return [check_int(who, 'every hidden size', s) for s in sizes]


@register
def AtariCnn(n_frames=4, hidden_sizes=(32, 32), output_size=128, mode='train'):
  """Atari CNN: (B, T, H, W, C) bytes -> (B, T, output_size); n_in = n_out = 1.

  Weights: two `Conv` (5x5, stride 2, 'SAME') and one `Dense`, each `(kernel,
  bias)`.

  Args:
    n_frames: frames stacked along channels: step t sees frames t, t-1, ...,
      t - n_frames + 1 (earlier steps see zeros).
    hidden_sizes: the two convolutions' output channels.
    output_size: width of the final Dense (+ Relu) output.
    mode: 'train', 'eval' or 'predict'; checked, no layer depends on it.
  """
  check_mode('AtariCnn', 'mode', mode)
  sizes = _widths('AtariCnn', hidden_sizes, 2)
  return Serial(_bytes_to_floats(), _frame_stack(n_frames), Conv(sizes[0], (5, 5), (2, 2), 'SAME'),
                Relu(), Conv(sizes[1], (5, 5), (2, 2), 'SAME'), Relu(), Flatten(n_axes_to_keep=2),
                Dense(check_int('AtariCnn', 'output_size', output_size)), Relu(), name='AtariCnn')


@register
def AtariCnnBody(n_frames=4, hidden_sizes=(32, 64, 64), output_size=512, mode='train',
                 kernel_initializer=None, padding='VALID'):
  """The DQN body (Trax 1.4): (B, T, H, W, C) bytes -> (B, T, output_size).

  Three `Conv` layers (8x8/4, 4x4/2, 3x3/1, `padding`, `kernel_initializer`
  or Conv's default), then `Dense(output_size)`; ReLU after each.
  """
  check_mode('AtariCnnBody', 'mode', mode)
  sizes = _widths('AtariCnnBody', hidden_sizes, 3)
  convs = [(sizes[0], (8, 8), (4, 4)), (sizes[1], (4, 4), (2, 2)), (sizes[2], (3, 3), (1, 1))]
  layers = []
  for filters, kernel, strides in convs:
    layers += [
        Conv(filters, kernel, strides, padding=padding, kernel_initializer=kernel_initializer),
        Relu()
    ]
  return Serial(_bytes_to_floats(), _frame_stack(n_frames), layers, Flatten(n_axes_to_keep=2),
                Dense(check_int('AtariCnnBody', 'output_size', output_size)), Relu(),
                name='AtariCnnBody')


@register
def FrameStackMLP(n_frames=4, hidden_sizes=(64,), output_size=64, mode='train'):
  """A frame stack, then `Dense` + ReLU per hidden size and `Dense(output_size)`.

  (B, T, d) -> (B, T, output_size); n_in = n_out = 1.
  """
  check_mode('FrameStackMLP', 'mode', mode)
  hidden = [[Dense(check_int('FrameStackMLP', 'every hidden size', d)),
             Relu()] for d in hidden_sizes]
  return Serial(_frame_stack(n_frames), hidden, Dense(output_size), name='FrameStackMLP')


__all__ = ['AtariCnn', 'AtariCnnBody', 'FrameStackMLP']
