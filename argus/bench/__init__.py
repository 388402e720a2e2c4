"""`argus bench`: an open-loop HTTP load generator against a running Argus server that scores
every returned image (shapes scorer) against the server's own full-level image of the same
prompt and seed. The summary has `argus simulate --json`'s fields plus measured quality."""

from argus.bench.run import BenchSpec, run_bench

__all__ = ["BenchSpec", "run_bench"]
