"""AssertShape, AssertFunction, assert_shape and check_shape_agreement."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import ArgumentError, ArgumentTypeError, LayerError
from minitrax.layers.assert_shape import (AssertFunction, AssertShape, assert_shape,
                                          check_shape_agreement)
from minitrax.layers.base import Fn, Layer
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense
from minitrax.shapes import ShapeDtype

# (spec, input shapes, passes?) -- the verdicts were printed by real Trax 1.4.1's AssertShape.
TRAX_CASES = [
    ('abc', [(2, 3, 4)], True),
    ('abc', [(2, 3)], False),
    ('aa', [(3, 3)], True),
    ('aa', [(3, 4)], False),
    ('a2', [(5, 2)], True),
    ('a2', [(5, 3)], False),
    ('...a', [(4,)], True),
    ('...a', [()], False),
    ('...a', [(2, 3, 4)], True),
    ('a...', [(2,)], True),
    ('a...b', [(2, 5)], True),
    ('a...b', [(2,)], False),
    ('...a,...a', [(2, 3), (2, 3)], True),
    ('...a,...a', [(2, 3), (4, 3)], False),
    ('...a,...b', [(2, 3), (2, 3, 3)], False),
    ('ab,bc', [(2, 3), (3, 4)], True),
    ('ab,bc', [(2, 3), (4, 4)], False),
    ('a.b', [(1, 2, 3)], True),
    ('...,...', [(1, 2), (1, 2)], True),
    ('...,...', [(1, 2), (1,)], False),
    ('a1...', [(2, 1, 5, 5)], True),
]


@pytest.mark.parametrize('spec, shapes, passes', TRAX_CASES)
def test_assert_shape_agrees_with_trax(spec, shapes, passes):
  layer = AssertShape(spec)
  xs = tuple(np.zeros(s, np.float32) for s in shapes)
  x = xs[0] if len(xs) == 1 else xs
  if passes:
    y, _ = layer.pure_fn(x, (), (), None)
    assert y is x
  else:
    with pytest.raises(LayerError, match=f"AssertShape: expected '{spec}', got shapes"):
      layer.pure_fn(x, (), (), None)


def test_assert_shape_checks_under_jit_and_names_the_sizes():
  layer = AssertShape('ab,bc', message='in my model')
  assert (layer.n_in, layer.n_out) == (2, 2)
  bad = (jnp.zeros((2, 3)), jnp.zeros((4, 4)))
  with pytest.raises(LayerError) as info:
    jax.jit(lambda x: layer.pure_fn(x, (), (), None)[0])(bad)
  assert "expected 'ab,bc', got shapes [(2, 3), (4, 4)] with sizes {'a': 2, 'b': 3}" in str(
      info.value)
  assert 'in my model' in str(info.value)


def test_assert_shape_default_message_names_where_it_was_made():
  with pytest.raises(LayerError, match=r'Defined at .*test_assert_shape.py:\d+'):
    AssertShape('a').pure_fn(np.zeros((2, 2)), (), (), None)


def test_assert_shape_repr_hidden_unless_visible():
  model = Serial(AssertShape('ab'), Dense(2), AssertShape('ab', visible_layer=True))
  assert repr(model) == 'Serial[\n  Dense_2\n  AssertShape\n]'  # as Trax 1.4.1 prints it


@pytest.mark.parametrize('spec', ['a-b', 'a...b...', 'ab->b'])
def test_assert_shape_bad_spec(spec):
  with pytest.raises(ArgumentError, match='may hold letters, digits and one "..." per tensor'):
    AssertShape(spec)
  with pytest.raises(ArgumentTypeError, match='spec must be a string'):
    AssertShape(3)


# AssertFunction verdicts (with a transpose or a sum inside) were printed by real Trax 1.4.1.
@pytest.mark.parametrize('spec, f, passes', [
    ('ab->ba', lambda x: x.T, True),
    ('ab->ab', lambda x: x.T, False),
    ('...a->...', lambda x: x.sum(-1), True),
    ('...a->...a', lambda x: x.sum(-1), False),
])
def test_assert_function_ties_inputs_to_outputs(spec, f, passes):
  layer = AssertFunction(spec, Fn('F', f))
  x = np.zeros((2, 3), np.float32)
  if passes:
    assert layer(x).shape == f(x).shape
  else:
    with pytest.raises(LayerError, match='function output'):
      layer(x)


def test_assert_shape_decorator_on_functions_and_classes():

  @assert_shape('...a->...b')
  def MyDense(n):  # pylint: disable=invalid-name
    return Dense(n)

  @assert_shape('ba->b')
  class RowSum(Layer):

    def forward(self, x, weights):
      return jnp.sum(x, axis=0)  # wrong axis: (b, a) -> (a,)

  assert MyDense(4)(np.ones((2, 3), np.float32)).shape == (2, 4)
  assert RowSum()(np.ones((3, 3), np.float32)).shape == (3,)  # a == b: passes
  with pytest.raises(LayerError, match=r"expected 'b', got shapes \[\(5,\)\]"):
    RowSum()(np.ones((2, 5), np.float32))
  with pytest.raises(ArgumentError, match="specification must be 'inputs->outputs'"):
    assert_shape('ab')


def test_check_shape_agreement():
  assert check_shape_agreement(Dense(3), ShapeDtype((2, 4))) == (2, 3)
  two = Fn('Two', lambda x: (x, x[:, :1]), n_out=2)
  assert check_shape_agreement(two, ShapeDtype((2, 4))) == ((2, 4), (2, 1))
  ids = Fn('Ids', lambda x: x + 1)
  assert check_shape_agreement(ids, ShapeDtype((3,), np.int32)) == (3,)

  class Liar(Layer):

    def forward(self, x, weights):
      return x

    def output_signature(self, input_signature):
      return ShapeDtype((5,))

  with pytest.raises(AssertionError, match=r'output_signature shapes \(5,\) != shapes of the call'):
    check_shape_agreement(Liar(), ShapeDtype((2, 4)))
