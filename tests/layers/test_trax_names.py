"""Trax's `tl.` namespace: the names Trax 1.2.3 and 1.4.1 users reach for, and the small layers
that complete it (DotProductAttention, LogSumExp, ThresholdToBinary, FlattenList, PrintShape,
ThresholdedLinearUnit)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import minitrax.layers as tl
from minitrax.errors import ArgumentError, LayerError
from minitrax.shapes import ShapeDtype

# Layer and helper names of `trax.layers` (dir() of real Trax 1.2.3 and 1.4.1, less module
# imports, Trax's symbolic tracer and the research layers listed in the README as not built).
TRAX_12_NAMES = """
Accuracy AccuracyScalar Add ArgMax Attention AttentionQKV AvgPool AxialPositionalEncoding
BaseCausalAttention BatchNorm Branch CausalAttention CausalConv Chunk Concatenate Conv Conv1d
ConvGRUCell CrossEntropyLoss Dense DotProductCausalAttention Drop Dropout Dup EMPTY_STATE
EMPTY_WEIGHTS Elu Embedding EncDecAttention EncoderDecoderMask Exp FastGelu
FilterResponseNorm FixedBasePositionalEncoding Flatten FlattenList Fn GRU GRUCell Gate Gelu
GeneralGRUCell GlorotNormalInitializer GlorotUniformInitializer HardSigmoid HardTanh
InitializerFromFile InnerSRUCell KaimingNormalInitializer KaimingUniformInitializer
L2Loss LSHCausalAttention
LSHSelfAttention LSTM LSTMCell Layer LayerNorm LeCunNormalInitializer LeCunUniformInitializer
LeakyRelu Log LogSoftmax MaxPool Mean MemoryEfficientCausalAttention Multiply
NegLogPerplexity NegLogPerplexityScalar Negate OrthogonalInitializer PaddingMask Parallel
ParametricRelu PositionalEncoding PureAttention RandomNormalInitializer
RandomUniformInitializer Relu Residual ReversibleHalfResidual ReversibleLayer
ReversibleSerial ReversibleSwap SRU Scan Select SelfAttention Selu Serial SerialWithSideOutputs
ShapeDtype ShiftRight Sigmoid SmoothL1Loss Softmax Softplus Split StopGradient SubtractTop Sum
SumOfWeights SumPool Swap Tanh ThresholdedLinearUnit TimeBinCausalAttention ToFloat
check_shape_agreement get_fans layer length_normalized look_adjacent one_hot signature
""".split()
TRAX_14_NAMES = """
Accelerate AssertFunction AssertShape AtariConvInit BatchLeadingAxes Bidirectional ScanSRUCell
BinaryClassifier
BinaryCrossEntropy BinaryCrossEntropyLoss BinaryCrossEntropySum CategoryAccuracy
CategoryCrossEntropy Cond ConfigurableAttention ConvCausalAttention ConvTranspose
CreateAttentionMaskLayer CrossEntropyLossWithLogSoftmax CrossEntropySum DotProductAttention
EfficientAttentionBase EinsumDense FactoredDense InfinitePositionalEncoding LocallyConnected1d
LocallyConnectedDense LocallyConvDense LogSumExp LowRankCausalAttention LowRankDense
MacroAveragedFScore MaskedSequenceAccuracy Max MergeHeads MergeLastTwoAxes Min
MixedLSHSelfAttention ModularCausalAttention MulticlassClassifier MultiplicativeCausalAttention
MultiplicativeConvCausalAttention MultiplicativeModularCausalAttention
MultiplicativeModularSparseDense PositionalEmbeddings PrintShape PureLSHSelfAttention
PureLSHSelfAttentionWrapper PureLayer RandomLayer RandomUniform ReversibleConcatenatePair
ReversiblePrintShape ReversibleReshape ReversibleSelect RelativeAttention
RelativeAttentionLMLayer RelativeAttentionLayer RelativeAttentionWrapper Rotate
SequenceAccuracy ShiftRightCls SinCosPositionalEncoding SparseDenseWithOptions SparseFF
SplitIntoHeads SplitLastAxis ThresholdToBinary TimeBinPositionalEncoding
WeightedCategoryAccuracy WeightedCategoryCrossEntropy WeightedFScore WeightedSum Weights
assert_shape calc_funnel_ratio fastmath flatten_weights_and_state get_rel_att_inputs
to_list unflatten_weights_and_state
""".split()


@pytest.mark.parametrize('names', [TRAX_12_NAMES, TRAX_14_NAMES], ids=['trax-1.2.3', 'trax-1.4.1'])
def test_trax_layer_names_are_all_here(names):
  assert [name for name in names if not hasattr(tl, name)] == []
  assert [name for name in names if name not in tl.__all__] == []


def test_dot_product_attention_matches_numpy_and_masks():
  rng = np.random.default_rng(0)
  q, k, v = (rng.normal(size=(6, 3, 4)).astype(np.float32) for _ in range(3))
  mask = np.ones((6, 1, 3), bool)
  mask[:, :, 2] = False  # the last key hidden from every query
  layer = tl.DotProductAttention()
  assert (layer.n_in, layer.n_out) == (4, 1)
  scores = q @ k.transpose(0, 2, 1) / 2.0
  scores[:, :, 2] = -1e9
  w = np.exp(scores - scores.max(-1, keepdims=True))
  expected = (w / w.sum(-1, keepdims=True)) @ v
  np.testing.assert_allclose(layer((q, k, v, mask)), expected, rtol=1e-5, atol=1e-6)
  with pytest.raises(
      LayerError, match=r'DotProductAttention: mask of shape \(6, 3\) does not '
      r'broadcast to the scores\' shape \(6, 3, 3\)'):
    layer((q, k, v, np.ones((6, 3), bool)))


def test_dot_product_attention_dropout_in_train_mode_only():
  q = k = v = jnp.ones((2, 4, 8))
  mask = jnp.ones((2, 1, 4), bool)
  eval_out = tl.DotProductAttention(dropout=0.5, mode='eval')((q, k, v, mask))
  np.testing.assert_allclose(eval_out, np.ones((2, 4, 8)), rtol=1e-6)
  layer = tl.DotProductAttention(dropout=0.5, mode='train')
  layer.init((ShapeDtype((2, 4, 8)),) * 3 + (ShapeDtype((2, 1, 4), bool),))
  out = layer.pure_fn((q, k, v, mask), (), (), jax.random.key(1))[0]
  assert not np.allclose(out, 1.0)  # some attention weights dropped, the rest scaled by 2
  assert set(np.unique(np.round(np.asarray(out) * 4) / 4)) <= {0.0, 0.5, 1.0, 1.5, 2.0}


def test_log_sum_exp_threshold_to_binary_and_flatten_list():
  x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], np.float32)
  np.testing.assert_allclose(tl.LogSumExp()(x), np.log(np.exp(x).sum(-1, keepdims=True)), rtol=1e-6)
  np.testing.assert_allclose(
      tl.LogSumExp(axis=0)(x), np.log(np.exp(x).sum(0, keepdims=True)), rtol=1e-6)
  binary = tl.ThresholdToBinary(threshold=1.5)(x)
  assert binary.dtype == jnp.int32
  np.testing.assert_array_equal(binary, [[0, 1, 1], [0, 0, 0]])
  flat = tl.FlattenList()(([x, (x + 1, [x + 2])],))  # one input: a nested list
  assert len(flat) == 3
  np.testing.assert_array_equal(flat[2], x + 2)


def test_print_shape_prints_and_passes_inputs_through(capsys):
  layer = tl.Serial(tl.PrintShape(n_in=2, msg='here'), tl.Add())
  y = layer((np.ones((2, 3), np.float32), np.ones((2, 3), np.float32)))
  np.testing.assert_array_equal(y, 2 * np.ones((2, 3)))
  assert 'PrintShape: here: [(2, 3)[float32], (2, 3)[float32]]' in capsys.readouterr().out


def test_thresholded_linear_unit_learns_its_threshold():
  layer = tl.ThresholdedLinearUnit()
  tau, _ = layer.init(ShapeDtype((4,)))
  assert tau.shape == () and float(tau) == 0.0
  x = np.array([-2.0, -0.5, 0.5, 2.0], np.float32)
  np.testing.assert_array_equal(layer(x), [0.0, 0.0, 0.5, 2.0])
  np.testing.assert_array_equal(layer.pure_fn(x, jnp.float32(1.0), (), None)[0], [1, 1, 1, 2])
  grad = jax.grad(lambda t: jnp.sum(layer.pure_fn(x, t, (), None)[0]))(jnp.float32(0.0))
  assert float(grad) == 2.0  # two inputs below the threshold


def test_dot_product_causal_attention_takes_trax_14s_max_inference_length():
  layer = tl.DotProductCausalAttention(max_inference_length=16, mode='predict')
  assert layer.predict_capacity() == 16
  with pytest.raises(ArgumentError, match='give max_len or max_inference_length, not both'):
    tl.DotProductCausalAttention(max_len=8, max_inference_length=16)


def test_atari_conv_init_draws_within_its_bound():
  w = tl.AtariConvInit((3, 3, 4, 8), jax.random.key(0))
  bound = 1 / np.sqrt(3 * 3 * 4)
  assert w.shape == (3, 3, 4, 8) and float(jnp.max(jnp.abs(w))) <= bound
  assert float(jnp.max(jnp.abs(w))) > 0.9 * bound  # uniform: the extremes are reached
  with pytest.raises(
      ArgumentError, match=r'AtariConvInit: kernel_shape must be \(height, width, '
      r'in, out\), got \(3, 4\)'):
    tl.AtariConvInit((3, 4), jax.random.key(0))


def test_scan_sru_cell_is_the_recurrence_of_sru():
  xf = np.array([[[1.0], [2.0], [3.0]]], np.float32)  # (batch 1, time 3, d 1)
  f = np.full((1, 3, 1), 0.5, np.float32)
  c0 = np.zeros((1, 1), np.float32)
  cs, last = tl.ScanSRUCell('eval')((xf, f, c0))
  # c_t = f c_{t-1} + xf_t: 1, 2.5, 4.25
  np.testing.assert_allclose(cs[0, :, 0], [1.0, 2.5, 4.25])
  np.testing.assert_allclose(last, [[4.25]])


def test_help_shows_each_layers_constructor_signature():
  import inspect  # pylint: disable=import-outside-toplevel
  assert str(inspect.signature(tl.Serial)) == '(*sublayers, name=None, sublayers_to_print=None)'
  assert list(inspect.signature(tl.Dense).parameters)[:2] == ['n_units', 'kernel_initializer']
  assert list(inspect.signature(tl.Dense(2)).parameters) == ['x', 'weights', 'state', 'rng']


def test_trax_12s_base_module_names_work_as_documented():
  from minitrax.layers import base  # pylint: disable=import-outside-toplevel

  @base.layer()
  def Double(x, **unused_kwargs):  # pylint: disable=invalid-name
    return x * 2

  @base.layer(n_in=2, n_out=1)
  def Plus(xs, **unused_kwargs):  # pylint: disable=invalid-name
    return xs[0] + xs[1]

  model = tl.Serial(Double(), tl.Dup(), Plus())
  np.testing.assert_array_equal(model(np.array([1., 2.], np.float32)), [4., 8.])
  times = base.Fn(lambda x, y: x * y, n_in=2, n_out=1)  # Trax 1.2's Fn(f, n_in, n_out)
  assert times.n_in == 2 and float(times((np.float32(2.), np.float32(3.)))) == 6.0
  assert base.PureLayer is tl.PureLayer
