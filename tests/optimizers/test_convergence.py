"""Every optimizer reduces a quadratic and the Rosenbrock function.

Each row states the learning rate, the number of steps and the factor by
which the loss must fall. The whole run is one compiled `fori_loop`.

| optimizer | quadratic: lr, steps, factor | Rosenbrock: lr, steps, factor |
|-----------|------------------------------|-------------------------------|
| SGD       | 0.03,  300, 1e6              | 0.002, 1000, 100              |
| Momentum  | 0.003, 300, 1e6              | 0.001, 1000, 1e4              |
| RMSProp   | 0.01,  300, 1e4              | 0.01,  1000, 100              |
| Adam      | 0.02,  300, 1e6              | 0.1,   1000, 1e4              |
| Adafactor | 0.05,  300, 1e4              | 0.03,  1000, 30               |
| SM3       | 0.3,   300, 1e6              | 1.0,   1000, 300              |

The quadratic is 0.5 * sum(c * w**2) over a (2, 3) array (so Adafactor uses
its factored statistics), c from 1 to 32, from w = 1 (loss 31.5). Rosenbrock
is (1 - x)**2 + 100 * (y - x**2)**2 over two scalars from (-1.2, 1) (loss
24.2).
"""

import jax
import jax.numpy as jnp
import pytest

from minitrax import optimizers

TABLE = {
    'SGD': (optimizers.SGD, (0.03, 300, 1e6), (0.002, 1000, 100)),
    'Momentum': (optimizers.Momentum, (0.003, 300, 1e6), (0.001, 1000, 1e4)),
    'RMSProp': (optimizers.RMSProp, (0.01, 300, 1e4), (0.01, 1000, 100)),
    'Adam': (optimizers.Adam, (0.02, 300, 1e6), (0.1, 1000, 1e4)),
    'Adafactor': (optimizers.Adafactor, (0.05, 300, 1e4), (0.03, 1000, 30)),
    'SM3': (optimizers.SM3, (0.3, 300, 1e6), (1.0, 1000, 300)),
}


def quadratic(weights):
  c = jnp.array([[1.0, 2.0, 4.0], [8.0, 16.0, 32.0]])
  return 0.5 * jnp.sum(c * weights['w']**2)


def rosenbrock(weights):
  x, y = weights['xy']
  return (1 - x)**2 + 100 * (y - x**2)**2


PROBLEMS = {
    'quadratic': (quadratic, {'w': jnp.ones((2, 3))}, 1),
    'rosenbrock': (rosenbrock, {'xy': (jnp.float32(-1.2), jnp.float32(1.0))}, 2),
}


def _minimize(optimizer, loss, weights, n_steps):
  """The loss after n_steps updates, all in one compiled loop."""

  @jax.jit
  def run(weights):
    slots, opt_params = optimizer.tree_init(weights)

    def body(step, carry):
      weights, slots = carry
      grads = jax.grad(loss)(weights)
      weights, slots, _ = optimizer.tree_update(step, grads, weights, slots, opt_params)
      return weights, slots

    weights, _ = jax.lax.fori_loop(0, n_steps, body, (weights, slots))
    return loss(weights)

  return float(run(weights))


@pytest.mark.parametrize('problem', list(PROBLEMS))
@pytest.mark.parametrize('name', list(TABLE))
def test_reduces_loss_by_stated_factor(name, problem):
  cls, *settings = TABLE[name]
  loss, weights, column = PROBLEMS[problem]
  learning_rate, n_steps, factor = settings[column - 1]
  start = float(loss(weights))
  end = _minimize(cls(learning_rate=learning_rate), loss, weights, n_steps)
  assert end <= start / factor, (f'{name} on {problem}: loss {start:.4g} -> {end:.4g} in {n_steps} '
                                 f'steps, wanted a factor of {factor:g}')
