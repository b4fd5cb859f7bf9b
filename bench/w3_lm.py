"""W3 'lm_medium': TransformerLM d256/ff1024/4 layers/4 heads, vocab 8192, batch 8 x 256,
Adam 1e-3, dropout 0.1, random tokens.

The same workload as ../shared/bench/peers/w3_lm_medium_flax.py (8 random
token batches made once and cycled; step 1 alone, 2 warm-up steps, 4 blocks
of 5; FLOPs/token = 6 * matmul_params + 12 * n_layers * seq * d_model). The
step is `common.manual_train_step` on `Serial(TransformerLM, CrossEntropyLoss())`;
dropout keys use JAX's default PRNG (threefry), as the Flax peer and the
Trainer do (`--rng_impl rbg` for the other generator).
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from bench import common
from minitrax.layers.combinators import Serial
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.models.transformer import TransformerLM
from minitrax.optimizers.adam import Adam
from minitrax.shapes import ShapeDtype

LM_MEDIUM = dict(vocab_size=8192, d_model=256, d_ff=1024, n_layers=4, n_heads=4, dropout=0.1)


def matmul_params(cfg):
  """q, k, v, o and the two feed-forward kernels per layer, plus the output kernel."""
  d, f, v, n = cfg['d_model'], cfg['d_ff'], cfg['vocab_size'], cfg['n_layers']
  return n * (4 * d * d + 2 * d * f) + d * v


def train_flops_per_token(cfg, seq):
  """6 * matmul_params + 12 * n_layers * seq * d_model (attention as a full square)."""
  return 6 * matmul_params(cfg) + 12 * cfg['n_layers'] * seq * cfg['d_model']


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument('--steps', type=int, default=20, help='timed steps')
  p.add_argument('--block', type=int, default=5)
  p.add_argument('--warmup', type=int, default=2)
  p.add_argument('--batch', type=int, default=8)
  p.add_argument('--seq', type=int, default=256)
  p.add_argument('--n_batches', type=int, default=8, help='distinct batches, cycled')
  p.add_argument('--lr', type=float, default=1e-3)
  p.add_argument('--dropout', type=float, default=LM_MEDIUM['dropout'])
  p.add_argument('--rng_impl', default=None, help='dropout key generator; default JAX default')
  p.add_argument('--seed', type=int, default=0)
  return p.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  calib = common.calibrate()
  rng = np.random.RandomState(args.seed)
  data = [
      jnp.asarray(
          rng.randint(1, LM_MEDIUM['vocab_size'], size=(args.batch, args.seq)).astype(np.int32))
      for _ in range(args.n_batches)
  ]
  cfg = {**LM_MEDIUM, 'dropout': args.dropout}
  model = Serial(TransformerLM(**cfg, max_len=2048, mode='train'), CrossEntropyLoss())
  optimizer = Adam(learning_rate=args.lr)
  sig = ShapeDtype((args.batch, args.seq), np.int32)
  state = common.initial_state(model, optimizer, (sig, sig),
                               jax.random.key(args.seed, impl=args.rng_impl))
  n_params = common.n_params(state[0])
  state, timing = common.time_train_loop(common.manual_train_step(model, optimizer), state,
                                         [(x, x) for x in data], args.steps, args.block,
                                         args.warmup)
  tokens = args.batch * args.seq
  steps_per_s = timing['steady_steps_per_s']
  fpt = train_flops_per_token(LM_MEDIUM, args.seq)
  common.emit(
      'W3_lm_medium', 'minitrax (manual step)', args, {
          'n_params': n_params,
          'matmul_params': matmul_params(LM_MEDIUM),
          **timing,
          'tokens_per_s': tokens * steps_per_s,
          'flops_formula': 'per token: 6*matmul_params + 12*n_layers*seq*d_model',
          'flops_per_token': fpt,
          'gflops': fpt * tokens * steps_per_s / 1e9,
          'gflops_6N': 6 * n_params * tokens * steps_per_s / 1e9,
          'peak_rss_mib': common.peak_rss_mib(),
      }, calib)


if __name__ == '__main__':
  main()
