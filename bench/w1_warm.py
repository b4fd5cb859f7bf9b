"""W1 with a warm compilation cache: the codelab run as a second process finds it.

Runs `bench.w1_codelab` twice in fresh processes sharing one new
`MINITRAX_CACHE_DIR`: the first fills the cache (its output is dropped),
the second is measured and its record re-emitted as `W1_codelab_warm_cache`.
This is what a user re-running a notebook or resuming a command-line run
sees; `python -m bench --only W1warm --peers` compares its `first_block_s`
with Flax's cold first 500 steps. (The other workloads run with the cache
off, as their peers do.)
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile


def main(argv=None):
  argv = list(sys.argv[1:] if argv is None else argv)
  cache = tempfile.mkdtemp(prefix='bench_w1_cache_')
  env = dict(os.environ, MINITRAX_CACHE_DIR=cache)
  cmd = [sys.executable, '-m', 'bench.w1_codelab'] + argv
  try:
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
  finally:
    shutil.rmtree(cache, ignore_errors=True)
  record = json.loads(out.strip().splitlines()[-1])
  record['workload'] = 'W1_codelab_warm_cache'
  print(json.dumps(record), flush=True)


if __name__ == '__main__':
  main()
