"""The peer of `bench/w1_init.py`: Flax's `model.init` and Optax's `opt.init` of W1's model.

Run by `python -m bench --only W1init --peers` with the peers' Python from
the peers' folder (../shared/bench/peers), whose modules it imports: the
codelab's TransformerLM in Flax linen and the Trax-like Adafactor of
`w1_codelab_flax.py`, timed as that script builds them (after the
calibration probe, so the backend is up), until the arrays are ready.
"""

import os
import sys

sys.path.insert(0, os.getcwd())

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import common  # noqa: E402  (the peers' modules)
from copy_task import codelab_args, trax_adafactor, trax_multifactor_lr  # noqa: E402
from flax_lm import TransformerLM  # noqa: E402
from lm_utils import LM_CODELAB  # noqa: E402


def main():
  args = codelab_args([])  # seed 0; the minitrax side's options are not the peer's
  calib = common.calibrate()
  t = common.now()
  model = TransformerLM(**LM_CODELAB, max_len=2048)
  init_key, dropout_key = jax.random.split(jax.random.PRNGKey(args.seed))
  params = model.init(init_key, jnp.zeros((16, 10), jnp.int32))['params']
  opt = trax_adafactor(trax_multifactor_lr(0.1, 400))
  state = jax.block_until_ready((params, opt.init(params), dropout_key))
  seconds = common.now() - t
  del state
  common.emit('W1_init', 'flax-linen+optax', args, {'init_s': seconds}, calib)


if __name__ == '__main__':
  main()
