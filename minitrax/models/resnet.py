"""Residual networks for images: ResNet-50 and Wide ResNet.

Both take NHWC images `(batch, height, width, channels)` (any dtype; the
first layer casts to float32) and give `(batch, n_output_classes)`
log-probabilities, ready for `CrossEntropyLoss`. Their `BatchNorm` layers
normalise with batch statistics in `mode='train'` (and update running
statistics in the state) and with the running statistics in 'eval' and
'predict'; the weights trees are the same in every mode.

Block structure, names and defaults follow Trax (`trax/models/resnet.py`).
Where Trax ends with a fixed `AvgPool` (7x7 for ResNet-50's 224x224 inputs,
8x8 for Wide ResNet's 32x32) and `Flatten`, these models average over all
remaining spatial positions, which is the same for those input sizes and
also works for any other (e.g. tiny test images).
"""

# Model and layer functions are CamelCase, as in Trax.
# pylint: disable=invalid-name

import jax.numpy as jnp

from minitrax.checks import check_callable, check_int, check_mode
from minitrax.errors import ArgumentError
from minitrax.layers.activation_fns import Relu
from minitrax.layers.base import Fn
from minitrax.layers.combinators import Residual, Serial
from minitrax.layers.convolution import Conv
from minitrax.layers.core import Dense, LogSoftmax, ToFloat
from minitrax.layers.normalization import BatchNorm
from minitrax.layers.pooling import MaxPool
from minitrax.models.registry import register

_LAYER_FN = 'a function returning a layer (e.g. {})'  # what norm and non_linearity must be


def GlobalAvgPool():
  """Mean over all spatial axes: `(batch, *spatial, channels) -> (batch, channels)`.

  n_in = n_out = 1; the input must have rank >= 3.
  """

  def f(x):
    if x.ndim < 3:
      raise ArgumentError(f'GlobalAvgPool: expected (batch, spatial..., channels) of rank >= 3, '
                          f'got shape {tuple(x.shape)}')
    return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))

  return Fn('GlobalAvgPool', f)


# ------------------------------------------------------------------ ResNet-50


def ConvBlock(kernel_size, filters, strides, norm=BatchNorm, non_linearity=Relu, mode='train'):
  """ResNet bottleneck block with a projection shortcut (changes size and stride).

  n_in = n_out = 1; `(batch, h, w, c) -> (batch, h / s, w / s, filters[2])`
  for strides `(s, s)`. Main path: 1x1 conv (strided), k x k conv, 1x1 conv,
  each followed by `norm` (and the first two by `non_linearity`); shortcut:
  strided 1x1 conv and `norm`; their sum goes through `non_linearity`.

  Args:
    kernel_size: int, size of the middle convolution's square kernel.
    filters: three ints, the widths of the three convolutions.
    strides: pair of ints for the first convolution and the shortcut.
    norm: `norm(mode=mode)` makes a normalization layer.
    non_linearity: `non_linearity()` makes an activation layer.
    mode: 'train', 'eval' or 'predict'.
  """
  filters1, filters2, filters3 = filters
  main = [
      Conv(filters1, (1, 1), strides),
      norm(mode=mode),
      non_linearity(),
      Conv(filters2, (kernel_size, kernel_size), padding='SAME'),
      norm(mode=mode),
      non_linearity(),
      Conv(filters3, (1, 1)),
      norm(mode=mode)
  ]
  shortcut = Serial(Conv(filters3, (1, 1), strides), norm(mode=mode))
  return Serial(Residual(*main, shortcut=shortcut), non_linearity(), name='ConvBlock')


def IdentityBlock(kernel_size, filters, norm=BatchNorm, non_linearity=Relu, mode='train'):
  """ResNet bottleneck block with an identity shortcut (keeps the shape).

  n_in = n_out = 1; `(batch, h, w, c) -> (batch, h, w, c)` with
  `c == filters[2]`. As `ConvBlock` without stride or shortcut projection.

  Args:
    kernel_size: height and width of the middle convolution.
    filters: output channels of the three convolutions (1x1, k x k, 1x1).
    norm: function returning the normalization layer, called with `mode`.
    non_linearity: function returning the activation layer.
    mode: 'train', 'eval' or 'predict'.
  """
  filters1, filters2, filters3 = filters
  main = [
      Conv(filters1, (1, 1)),
      norm(mode=mode),
      non_linearity(),
      Conv(filters2, (kernel_size, kernel_size), padding='SAME'),
      norm(mode=mode),
      non_linearity(),
      Conv(filters3, (1, 1)),
      norm(mode=mode)
  ]
  return Serial(Residual(*main), non_linearity(), name='IdentityBlock')


@register
def Resnet50(d_hidden=64, n_output_classes=1001, mode='train', norm=BatchNorm, non_linearity=Relu):
  """ResNet-50 (He et al., 2015, https://arxiv.org/abs/1512.03385).

  n_in = n_out = 1; `(batch, height, width, channels) -> (batch,
  n_output_classes)` log-probabilities. A strided 7x7 convolution and 3x3
  max-pool, then four stages of bottleneck blocks (3, 4, 6 and 3 blocks) with
  widths `(d, d, 4d)` times 1, 2, 4 and 8 for `d = d_hidden` (stages 2-4
  halve the resolution), a global average pool, `Dense` and `LogSoftmax`.

  Args:
    d_hidden: width of the first convolution (stage widths are multiples).
    n_output_classes: number of classes.
    mode: 'train', 'eval' or 'predict' (BatchNorm uses batch statistics only
      in 'train').
    norm: `norm(mode=mode)` makes each normalization layer, e.g. `BatchNorm`
      or `FilterResponseNorm`.
    non_linearity: `non_linearity()` makes each activation layer.
  """
  check_int('Resnet50', 'd_hidden', d_hidden)
  check_int('Resnet50', 'n_output_classes', n_output_classes)
  check_mode('Resnet50', 'mode', mode)
  check_callable('Resnet50', 'norm', norm, _LAYER_FN.format('BatchNorm'))
  check_callable('Resnet50', 'non_linearity', non_linearity, _LAYER_FN.format('Relu'))

  def filters(multiplier):
    return [multiplier * d_hidden, multiplier * d_hidden, 4 * multiplier * d_hidden]

  def stage(multiplier, n_identity_blocks, strides=(2, 2)):
    return [ConvBlock(3, filters(multiplier), strides, norm, non_linearity, mode)] + [
        IdentityBlock(3, filters(multiplier), norm, non_linearity, mode)
        for _ in range(n_identity_blocks)
    ]

  return Serial(ToFloat(), Conv(d_hidden, (7, 7), (2, 2), 'SAME'), norm(mode=mode), non_linearity(),
                MaxPool(pool_size=(3, 3), strides=(2, 2)), stage(1, 2, strides=(1, 1)), stage(2, 3),
                stage(4, 5), stage(8, 2), GlobalAvgPool(), Dense(n_output_classes), LogSoftmax(),
                name='Resnet50')


# ------------------------------------------------------------------ Wide ResNet


def WideResnetBlock(channels, strides=(1, 1), bn_momentum=0.9, mode='train'):
  """Pre-activation block: (BatchNorm, Relu, 3x3 conv) twice, the first conv strided.

  n_in = n_out = 1; `(batch, h, w, c) -> (batch, h / s, w / s, channels)`.
  No residual connection here; `WideResnetGroup` adds it.

  Args:
    channels: output channels of both convolutions.
    strides: the first convolution's (height, width) strides `s`.
    bn_momentum: BatchNorm's moving-average momentum.
    mode: 'train', 'eval' or 'predict'.
  """
  return Serial(BatchNorm(momentum=bn_momentum, mode=mode), Relu(),
                Conv(channels, (3, 3), strides, padding='SAME'),
                BatchNorm(momentum=bn_momentum, mode=mode), Relu(),
                Conv(channels, (3, 3), padding='SAME'), name='WideResnetBlock')


def WideResnetGroup(n, channels, strides=(1, 1), bn_momentum=0.9, mode='train'):
  """`n` residual `WideResnetBlock`s; the first strided, with a 3x3 conv shortcut.

  n_in = n_out = 1; `(batch, h, w, c) -> (batch, h / s, w / s, channels)`.
  Each of the other `n - 1` blocks has its own identity shortcut (Trax wraps
  them all in one residual connection; this is the paper's structure).

  Args:
    n: number of blocks.
    channels: output channels of every block.
    strides: the first block's (height, width) strides `s`.
    bn_momentum: BatchNorm's moving-average momentum.
    mode: 'train', 'eval' or 'predict'.
  """
  first = Residual(WideResnetBlock(channels, strides, bn_momentum, mode),
                   shortcut=Conv(channels, (3, 3), strides, padding='SAME'))
  rest = [Residual(WideResnetBlock(channels, (1, 1), bn_momentum, mode)) for _ in range(n - 1)]
  return Serial(first, rest, name='WideResnetGroup')


@register
def WideResnet(n_blocks=3, widen_factor=1, n_output_classes=10, bn_momentum=0.9, mode='train'):
  """Wide ResNet (Zagoruyko & Komodakis, 2016, https://arxiv.org/abs/1605.07146).

  n_in = n_out = 1; `(batch, height, width, channels) -> (batch,
  n_output_classes)` log-probabilities. A 3x3 convolution to 16 channels,
  three groups of `n_blocks` blocks with `16k`, `32k` and `64k` channels for
  `k = widen_factor` (the last two halve the resolution), BatchNorm, Relu,
  a global average pool, `Dense` and `LogSoftmax`: `6 n_blocks + 4` layers
  deep (WRN-28-10 is `n_blocks=4, widen_factor=10`).

  Args:
    n_blocks: blocks per group.
    widen_factor: channel multiplier; 1 is a plain pre-activation ResNet.
    n_output_classes: number of classes.
    bn_momentum: momentum of every `BatchNorm`'s running statistics.
    mode: 'train', 'eval' or 'predict'.
  """
  check_int('WideResnet', 'n_blocks', n_blocks)
  check_int('WideResnet', 'widen_factor', widen_factor)
  check_int('WideResnet', 'n_output_classes', n_output_classes)
  check_mode('WideResnet', 'mode', mode)
  return Serial(ToFloat(), Conv(16, (3, 3), padding='SAME'),
                WideResnetGroup(n_blocks, 16 * widen_factor, (1, 1), bn_momentum, mode),
                WideResnetGroup(n_blocks, 32 * widen_factor, (2, 2), bn_momentum, mode),
                WideResnetGroup(n_blocks, 64 * widen_factor, (2, 2), bn_momentum, mode),
                BatchNorm(momentum=bn_momentum, mode=mode), Relu(), GlobalAvgPool(),
                Dense(n_output_classes), LogSoftmax(), name='WideResnet')


__all__ = [
    'Resnet50', 'WideResnet', 'ConvBlock', 'IdentityBlock', 'WideResnetBlock', 'WideResnetGroup',
    'GlobalAvgPool'
]
