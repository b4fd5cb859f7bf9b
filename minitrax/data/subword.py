"""Trax's subword vocabulary files (`SubwordTextEncoder`, e.g. `en_8k.subword`), read without TF.

A vocabulary file lists one subtoken per line, optionally in single or
double quotes; the id of a subtoken is its line number (from 0). Encoding a
text:

1. split it into tokens at every change between alphanumeric characters
   (Unicode categories L* and N*) and the rest, dropping a single space
   between two tokens (but not at the very start);
2. escape each token: `\\` becomes `\\\\`, `_` becomes `\\u`, a character
   that no subtoken contains (or a newline) becomes `\\<code point>;`, and
   `_` is appended;
3. cut each escaped token greedily into the longest subtokens of the file,
   from the left.

Decoding joins the subtokens, splits at `_`, undoes the escapes and puts a
space back between two alphanumeric tokens.

>>> vocab = SubwordVocab(['a_', 'b_', 'ab', '_', ' ', '\\\\', 'u', ';', '1', '2', '3', '4', '9'])
>>> vocab.encode('ab a')
[2, 3, 0]
>>> vocab.decode([2, 3, 0])
'ab a'
"""

import functools
import re
import unicodedata

from minitrax.errors import DataError

__all__ = ['SubwordVocab', 'split_tokens', 'join_tokens']

_ESCAPE_CHARS = set('\\_u;0123456789')
_UNESCAPE = re.compile(r'\\u|\\\\|\\([0-9]+);')


@functools.lru_cache(maxsize=65536)
def _is_alnum(c):
  return unicodedata.category(c)[0] in 'LN'


def split_tokens(text):
  """Step 1 above: `text` as a list of alternately alphanumeric and other tokens."""
  if not text:
    return []
  tokens, start = [], 0
  for pos in range(1, len(text)):
    if _is_alnum(text[pos]) != _is_alnum(text[pos - 1]):
      token = text[start:pos]
      if token != ' ' or start == 0:
        tokens.append(token)
      start = pos
  tokens.append(text[start:])
  return tokens


def join_tokens(tokens):
  """The inverse of `split_tokens`: a space between two alphanumeric tokens."""
  out = []
  for i, token in enumerate(tokens):
    if i and _is_alnum(tokens[i - 1][0]) and _is_alnum(token[0]):
      out.append(' ')
    out.append(token)
  return ''.join(out)


def _unescape(escaped):

  def replace(match):
    if match.group(1) is None:
      return '_' if match.group(0) == '\\u' else '\\'
    try:
      return chr(int(match.group(1)))
    except (ValueError, OverflowError):
      return '\u3013'  # The "geta mark" Trax uses for an undefined character.

  return _UNESCAPE.sub(replace, escaped[:-1] if escaped.endswith('_') else escaped)


class SubwordVocab:
  """A subword vocabulary: `encode(text) -> ids`, `decode(ids) -> text`.

  Args:
    subtokens: the subtoken strings; subtoken `i` has id `i`.
    source: names the vocabulary in messages (its file).
  """

  def __init__(self, subtokens, source='<subtokens>'):
    self.subtokens = list(subtokens)
    self.source = source
    if not any(self.subtokens):
      raise DataError(f'subword vocabulary {source}: it has no subtokens')
    self._ids = {s: i for i, s in enumerate(self.subtokens) if s}
    self._longest = max(len(s) for s in self.subtokens)
    self._alphabet = {c for s in self.subtokens for c in s} | _ESCAPE_CHARS
    self._token_ids = functools.lru_cache(maxsize=2**16)(self._uncached_token_ids)

  @classmethod
  def from_file(cls, path):
    """Reads a vocabulary file (see the module docstring)."""
    subtokens = []
    with open(path, encoding='utf-8', newline='\n') as f:
      for line in f:
        s = line.rstrip()
        if s[:1] in ('\'', '"') and s.endswith(s[0]):  # Quotes, as Trax strips them.
          s = s[1:-1]
        subtokens.append(s)
    return cls(subtokens, source=path)

  @property
  def vocab_size(self):
    return len(self.subtokens)

  def encode(self, text):
    """Ids of `text` (str, or UTF-8 bytes): a list of ints."""
    if isinstance(text, (bytes, bytearray)):
      text = bytes(text).decode('utf-8', errors='ignore')
    return [i for token in split_tokens(text) for i in self._token_ids(token)]

  def _escape(self, token):
    token = token.replace('\\', '\\\\').replace('_', '\\u')
    return ''.join(c if c in self._alphabet and c != '\n' else f'\\{ord(c)};' for c in token) + '_'

  def _uncached_token_ids(self, token):
    escaped, ids, start = self._escape(token), [], 0
    while start < len(escaped):
      for end in range(min(len(escaped), start + self._longest), start, -1):
        i = self._ids.get(escaped[start:end])
        if i is not None:
          ids.append(i)
          start = end
          break
      else:
        raise DataError(f'subword vocabulary {self.source}: it has no subtoken for '
                        f'{escaped[start]!r} (in the escaped token {escaped!r}); a Trax subword '
                        'vocabulary holds every character of its alphabet and \\_u;0123456789')
    return tuple(ids)

  def decode(self, ids):
    """The text of `ids`; ids outside the vocabulary are skipped."""
    pieces = ''.join(self.subtokens[i] if 0 <= i < len(self.subtokens) else '' for i in ids)
    tokens = [_unescape(t + '_') for t in pieces.split('_') if t]
    return join_tokens([t for t in tokens if t])
