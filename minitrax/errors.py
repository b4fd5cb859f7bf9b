"""The one family of minitrax errors.

Every error that minitrax raises on purpose derives from `MinitraxError`, so
`except minitrax.errors.MinitraxError` catches all of them. Each subclass
names one kind of mistake; each message names the layer, file, flag, tree path
or value involved, with the expected and the actual value. Where an error
wraps another exception, the original is kept as `__cause__`.
"""


class MinitraxError(Exception):
  """Base class of every error minitrax raises deliberately."""


class LayerError(MinitraxError):
  """A layer failed in `init`, `pure_fn` or `output_signature`.

  The message names the layer, the method, where the layer was created
  (file:line of user code), the path of enclosing combinators and the input
  shapes and dtypes. The original exception is `__cause__`.

  Fix: read the last line (the original error); usually an input has the
  wrong shape or dtype for the layer named first.

  Args:
    layer_name: The failing layer's name.
    method: The method that failed: `'init'`, `'pure_fn'` or `'output_signature'`.
    created_at: Where the layer was created, as `'file:line'` text.
    input_signature: The input signature (a `ShapeDtype` or tuple) it got.
    cause: The original exception; its type and text end the message.
  """

  def __init__(self, layer_name, method, created_at, input_signature, cause):
    self.layer_name = layer_name
    self.method = method
    self.created_at = created_at
    self.input_signature = input_signature
    self.cause_text = f'{type(cause).__name__}: {cause}'
    self.layer_path = (layer_name,)
    super().__init__(self._message())

  def add_outer(self, name):
    """Records that the failing layer sits inside the layer `name`."""
    self.layer_path = (name,) + self.layer_path
    self.args = (self._message(),)

  def _message(self):
    return (f'Exception passing through layer {self.layer_name} (in {self.method}):\n'
            f'  layer created in {self.created_at}\n'
            f'  layer path: {" > ".join(self.layer_path)}\n'
            f'  input signature: {self.input_signature}\n'
            f'  {self.cause_text}')


class LayerAttributeError(MinitraxError, AttributeError):
  """An attribute that a layer does not have was assigned (a likely typo).

  Fix: use the attribute the message suggests (`weights`, not `weight`), or
  create the attribute in the layer's `__init__`.
  """


class ArgumentError(MinitraxError, ValueError):
  """A constructor, function or layer got an argument or input of the wrong value.

  Constructors raise it eagerly; inside `init`/`pure_fn` the base class wraps it
  in `LayerError`. The message names the caller, the argument, the expected and
  the actual value. Fix: pass what the message asks for.
  """


class ArgumentTypeError(MinitraxError, TypeError):
  """A constructor, function or layer got an argument of the wrong type."""


class ShapeError(MinitraxError, ValueError):
  """An input signature, shape or dtype is not what a function needs."""


class CheckpointError(MinitraxError, ValueError):
  """A checkpoint file cannot be written or read, or does not fit the model.

  The message names the file and what is wrong: not a minitrax checkpoint,
  truncated, corrupted (checksum), from a newer format version, a disallowed
  type, or the list of tree paths whose saved and expected shapes differ.
  """


class OptimizerError(MinitraxError, ValueError):
  """An optimizer or schedule was given an invalid argument or tree."""


class DataError(MinitraxError, ValueError):
  """An input stream or dataset is malformed, empty or unavailable."""


class ConfigError(MinitraxError, ValueError):
  """A command-line flag, gin binding, model or dataset name is unknown."""


class TrainingError(MinitraxError, RuntimeError):
  """Training cannot go on (for example, the loss became NaN or infinite)."""


class ExtraMissingError(MinitraxError, ImportError):
  """An optional dependency is not installed; the message names the pip extra that installs it
  (e.g. `pip install -e '.[plot]'` for matplotlib)."""


class RunDirError(CheckpointError):
  """A run's output folder cannot be used.

  The message names the folder and the reason: it is a file, it lies under a
  file, it is not writable, or another run (whose pid and host are named)
  holds its lock `<output_dir>/.lock`. Raised when a `Trainer`, `train()` or
  `Loop` starts, before anything is compiled or written.

  Fix: pick another `output_dir`, make it writable, or wait for (or close) the
  run that holds it.
  """


class TrainingInterrupted(TrainingError):
  """Training stopped at a SIGTERM or SIGINT, after saving a checkpoint.

  Attributes:
    signum: the signal's number (`signal.SIGTERM` or `signal.SIGINT`).
    step: the training step saved.
    path: the checkpoint written, or None when there is no output folder.

  Fix: run again on the same output folder to continue where it stopped.
  """

  def __init__(self, message, signum=None, step=None, path=None):
    super().__init__(message)
    self.signum, self.step, self.path = signum, step, path
