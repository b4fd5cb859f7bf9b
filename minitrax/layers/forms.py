"""The forms Trax documented for writing a layer, each run through the one pure contract.

A layer subclass may be written in any of three forms; `Layer.pure_fn` and
`Layer.make_weights_and_state` call it through this module, so each form is
pure from the outside:

========  ==========================================  ====================================
form      makes weights and state                     computes
========  ==========================================  ====================================
minitrax  `init_weights_and_state(sig, rng)` returns  `forward(x, weights)` or
          `(weights, state)`                          `forward_with_state(x, weights,
                                                      state, rng)` returns `(y, state)`
Trax 1.2  `new_weights(sig)` or                       the same, with `rng` (and any other
          `new_weights_and_state(sig)` returns them;  argument) given by keyword to a
          randomness from `self.new_rng()`            `forward_with_state(x, weights=...,
                                                      state=..., **kwargs)`
Trax 1.4  `init_weights_and_state(sig)` assigns       `forward(x)` reads `self.weights`,
          `self.weights` / `self.state`; randomness   `self.state`, `self.rng`, may assign
          from `self.rng` or `self.new_rng()`         `self.state`
========  ==========================================  ====================================

The Trax forms read and assign `self.weights`, `self.state` and `self.rng`.
While such a method runs, those attributes are *scoped*: they hold the
arguments of this one call (tracers under `jax.jit`), assignments go to the
scope, and everything is restored in a `finally`, so no tracer outlives the
call and nothing is stored on the layer. A layer whose `has_backward` is True
has its `backward(inputs, output, grad, weights, state, new_state, rng=...)`
used as the vector-Jacobian product of its forward pass (`jax.custom_vjp`):
it returns the gradients of the inputs and of the weights.

The form is told from the methods a class overrides and how many parameters
they take, once per class.
"""

import contextlib
import functools
import inspect

import jax

EMPTY = ()


class Scope:
  """What `self.weights`, `self.state` and `self.rng` mean during one call of a Trax form."""

  __slots__ = ('weights', 'state', 'rng')

  def __init__(self, weights, state, rng):
    self.weights, self.state, self.rng = weights, state, rng


@contextlib.contextmanager
def scoped(layer, weights, state, rng):
  """Yields the `Scope` that `layer`'s attributes read and assign until the block ends.

  `layer._rng` also holds the scope's key meanwhile (Trax 1.2 layers read it).
  """
  saved = (layer.__dict__.get('_scope'), layer.__dict__.get('_rng'))
  scope = Scope(weights, state, rng)
  object.__setattr__(layer, '_scope', scope)
  object.__setattr__(layer, '_rng', rng)
  try:
    yield scope
  finally:
    object.__setattr__(layer, '_scope', saved[0])
    object.__setattr__(layer, '_rng', saved[1])


def _n_params(method):
  """The positional parameters of a method after `self`, and whether it takes `**kwargs`."""
  params = list(inspect.signature(method).parameters.values())[1:]
  positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
  return len(positional), any(p.kind == p.VAR_KEYWORD for p in params)


def _overrides(cls, *names):
  """The first of `names` that a class in `cls`'s MRO before `Layer` defines, or None."""
  for klass in cls.__mro__:
    if klass.__name__ == 'Layer' and klass.__module__ == 'minitrax.layers.base':
      return None
    for name in names:
      if name in vars(klass):
        return name
  return None


@functools.cache
def init_form(cls):
  """'minitrax', 'trax14' or 'trax12': how `cls` makes its weights and state."""
  method = _overrides(cls, 'init_weights_and_state', 'new_weights_and_state', 'new_weights')
  if method == 'init_weights_and_state':
    return 'trax14' if _n_params(cls.init_weights_and_state)[0] == 1 else 'minitrax'
  return 'trax12' if method else 'minitrax'


@functools.cache
def forward_form(cls):
  """'minitrax', 'keywords' (Trax 1.2's `**kwargs`) or 'trax14': how `cls` computes."""
  method = _overrides(cls, 'forward_with_state', 'forward')  # the most derived of the two
  if method == 'forward_with_state':
    n, kwargs = _n_params(cls.forward_with_state)
    return 'keywords' if n < 4 and kwargs else 'minitrax'
  if method == 'forward' and _n_params(cls.forward)[0] == 1:
    return 'trax14'
  return 'minitrax'


def make_weights_and_state(layer, input_signature, rng):
  """`(weights, state)` of `layer` for `input_signature`, whatever its form; stores nothing."""
  form = init_form(type(layer))
  if form == 'minitrax':
    return layer.init_weights_and_state(input_signature, rng)
  with scoped(layer, EMPTY, EMPTY, rng) as scope:
    if form == 'trax14':
      layer.init_weights_and_state(input_signature)
      return scope.weights, scope.state
    if _overrides(type(layer), 'new_weights_and_state', 'new_weights') == 'new_weights_and_state':
      return layer.new_weights_and_state(input_signature)
    return layer.new_weights(input_signature), EMPTY


def forward(layer, x, weights, state, rng):
  """`(outputs, new_state)` of `layer`, whatever its form; with its custom backward if any."""
  if getattr(layer, 'has_backward', False):
    return _with_backward(layer, x, weights, state, rng)
  return _forward(layer, x, weights, state, rng)


def _forward(layer, x, weights, state, rng):
  form = forward_form(type(layer))
  if form == 'trax14':
    with scoped(layer, weights, state, rng) as scope:
      y = layer.forward(x)
      return y, scope.state
  if form == 'keywords':
    with scoped(layer, weights, state, rng):
      return layer.forward_with_state(x, weights=weights, state=state, rng=rng)
  return layer.forward_with_state(x, weights, state, rng)


def _with_backward(layer, x, weights, state, rng):
  """The forward pass with `layer.backward` as its vector-Jacobian product."""

  @jax.custom_vjp
  def run(x, weights, state, rng):
    return _forward(layer, x, weights, state, rng)

  def run_forward(x, weights, state, rng):
    y, new_state = _forward(layer, x, weights, state, rng)
    return (y, new_state), (x, y, weights, state, new_state, rng)

  def run_backward(saved, cotangents):
    x, y, weights, state, new_state, rng = saved
    grad_x, grad_weights = layer.backward(x, y, cotangents[0], weights, state, new_state, rng=rng)
    return grad_x, grad_weights, None, None

  run.defvjp(run_forward, run_backward)
  return run(x, weights, state, rng)


__all__ = ['Scope', 'scoped', 'init_form', 'forward_form', 'make_weights_and_state', 'forward']
