"""`python -m bench`: runs the suite; see bench/run.py."""

from bench.run import main

main()
