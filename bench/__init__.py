"""minitrax benchmark suite (not part of the tests): `python -m bench --help`.

Workloads W1-W4 and the matmul ceiling are defined exactly as the peer
baselines in ../shared/bench/peers (README there), so figures pair up one to
one; see bench/README.md.
"""
