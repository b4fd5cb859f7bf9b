"""Trax 1.4's models (`minitrax.models.trax14`): Trax 1.4.1's weights, logits, predict mode."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.layers.attention import CausalAttention14
from minitrax.models import trax14
from minitrax.models.registry import get_model
from minitrax.shapes import ShapeDtype

IDS = ShapeDtype((2, 8), np.int32)
ONE = ShapeDtype((2, 1), np.int32)
SIZES = dict(d_model=8, d_ff=16, n_heads=2, max_len=16)
TOKENS = np.random.default_rng(0).integers(1, 16, size=(2, 8)).astype(np.int32)

MODELS = {
    'TransformerEncoder':
        (lambda mode: trax14.TransformerEncoder(16, n_classes=3, n_layers=1, mode=mode, **SIZES),
         IDS),
    'TransformerDecoder':
        (lambda mode: trax14.TransformerDecoder(16, n_layers=1, mode=mode, **SIZES), IDS),
    'Transformer': (lambda mode: trax14.Transformer(16, n_encoder_layers=1, n_decoder_layers=1, mode
                                                    =mode, **SIZES), (IDS, IDS)),
    'Transformer_two_vocabularies':
        (lambda mode: trax14.Transformer(16, output_vocab_size=12, n_encoder_layers=1,
                                         n_decoder_layers=1, mode=mode, **SIZES), (IDS, IDS)),
}

# The weight shapes of real Trax 1.4.1's models with these arguments, in Trax's order (printed by
# `[a.shape for a in leaves(model.init(sig)[0])]` under Trax 1.4.1).
TRAX_1_4_SHAPES = {
    'TransformerEncoder': [(16, 8), (16, 8), (8,), (8,), (8, 8), (8,), (8, 8), (8,), (8, 8), (8,),
                           (8, 8), (8,), (8,), (8,), (8, 16), (16,), (16, 8), (8,), (8,), (8,),
                           (8, 3), (3,)],
    'TransformerDecoder': [(16, 8), (16, 8), (8,), (8,), (8, 8), (8,), (8, 8), (8,), (8, 8), (8,),
                           (8, 8), (8,), (8,), (8,), (8, 16), (16,), (16, 8), (8,), (8,), (8,)],
    'Transformer': [(16, 8), (16, 8), (8,), (8,), (8, 8), (8,), (8, 8), (8,), (8, 8), (8,), (8, 8),
                    (8,), (8,), (8,), (8, 16), (16,), (16, 8), (8,), (8,), (8,), (16, 8),
                    (8,), (8,), (8, 8), (8,), (8, 8), (8,), (8, 8), (8,), (8, 8), (8,), (8,), (8,),
                    (8, 8), (8,), (8, 8), (8,), (8, 8), (8,), (8, 8), (8,), (8,), (8,), (8, 16),
                    (16,), (16, 8), (8,), (8,), (8,), (8, 16), (16,)],
    'Transformer_two_vocabularies': [(16, 8), (16, 8), (8,), (8,), (8, 8), (8,),
                                     (8, 8), (8,), (8, 8), (8,), (8, 8), (8,), (8,), (8,), (8, 16),
                                     (16,), (16, 8), (8,), (8,), (8,), (12, 8), (16, 8), (8,), (8,),
                                     (8, 8), (8,), (8, 8), (8,), (8, 8), (8,), (8, 8), (8,), (8,),
                                     (8,), (8, 8), (8,), (8, 8), (8,), (8, 8), (8,), (8, 8), (8,),
                                     (8,), (8,), (8, 16), (16,), (16, 8), (8,), (8,), (8,), (8, 12),
                                     (12,)],
}


@pytest.mark.parametrize('name', sorted(MODELS))
def test_weights_are_trax_1_4_s_in_every_mode(name):
  make, sig = MODELS[name]
  shapes = [tuple(a.shape) for a in jax.tree.leaves(make('eval').init(sig)[0])]
  assert shapes == TRAX_1_4_SHAPES[name]
  for mode in ('train', 'predict'):
    if mode == 'predict' and name != 'TransformerEncoder':
      sig = (IDS, ONE) if isinstance(sig, tuple) else ONE
    weights = make(mode).init(sig)[0]
    assert [tuple(a.shape) for a in jax.tree.leaves(weights)] == shapes, mode


def test_models_end_in_logits():
  lm = trax14.TransformerLM(16, n_layers=1, mode='eval', **SIZES)
  lm.init(IDS)
  logits = np.asarray(lm(TOKENS))
  assert logits.shape == (2, 8, 16)
  assert not np.allclose(np.exp(logits).sum(-1), 1.0, atol=1e-3)  # not log-probabilities
  rnn = trax14.RNNLM(16, d_model=8, mode='eval')
  rnn.init(IDS)
  assert not np.allclose(np.exp(np.asarray(rnn(TOKENS))).sum(-1), 1.0, atol=1e-3)
  mlp = trax14.MLP(layer_widths=(8, 4))
  mlp.init(ShapeDtype((2, 6)))
  assert mlp.output_signature(ShapeDtype((2, 6))) == ShapeDtype((2, 4))


def test_transformer_lm_predict_equals_eval():
  evaluated = trax14.TransformerLM(16, n_layers=1, mode='eval', **SIZES)
  weights, _ = evaluated.init(IDS)
  expected = np.asarray(evaluated(TOKENS))
  predictor = trax14.TransformerLM(16, n_layers=1, mode='predict', **SIZES)
  predictor.init(ONE)
  predictor.weights = weights
  fed = np.concatenate([np.zeros_like(TOKENS[:, :1]), TOKENS[:, :-1]], axis=1)
  got = np.concatenate([predictor(fed[:, i:i + 1]) for i in range(8)], axis=1)
  np.testing.assert_allclose(got, expected, atol=1e-5)


def test_transformer_predict_equals_eval():
  source, target = TOKENS, TOKENS[:, ::-1].copy()
  evaluated = trax14.Transformer(16, n_encoder_layers=1, n_decoder_layers=1, mode='eval', **SIZES)
  weights, _ = evaluated.init((IDS, IDS))
  expected = np.asarray(evaluated((source, target))[0])
  predictor = trax14.Transformer(16, n_encoder_layers=1, n_decoder_layers=1, mode='predict',
                                 **SIZES)
  predictor.init((IDS, ONE))
  predictor.weights = weights
  fed = np.concatenate([np.zeros_like(target[:, :1]), target[:, :-1]], axis=1)
  got = np.concatenate([predictor((source, fed[:, i:i + 1]))[0] for i in range(8)], axis=1)
  np.testing.assert_allclose(got, expected, atol=1e-5)


def test_signatures_follow_trax_1_4():
  """max_len before dropout (positionally), dropout_shared_axes, 1.4's MLP arguments."""
  lm = trax14.TransformerLM(16, 8, 16, 1, 2, 12, 0.0, None, 'eval')
  assert lm.init(IDS)[0][3].shape == (12, 8)  # the position table: (max_len, d_model)
  shared = trax14.TransformerLM(16, n_layers=1, dropout_shared_axes=(1,), **SIZES)
  weights, state = shared.init(IDS)
  y = shared.pure_fn(TOKENS, weights, state, jax.random.key(0))[0]
  assert bool(jnp.all(jnp.isfinite(y)))
  with pytest.raises(ValueError, match='CausalAttention: use_dconv=True is not supported'):
    CausalAttention14(8, use_dconv=True)
  assert get_model('TransformerLM') is not trax14.TransformerLM  # the registry keeps Trax 1.2's
