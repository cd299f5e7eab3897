"""Entry point for sattn_py_test: runs pytest on the test file given as the first argument.

Honours Bazel's test sharding (`shard_count` on the target): shard i of n runs the collected
tests whose index is i modulo n, so parametrised families spread over every shard.
"""
import os
import sys

import pytest


class BazelShard:
    """pytest plugin: keep this shard's share of the collected tests (round robin)."""

    def __init__(self, index: int, total: int):
        self.index, self.total = index, total

    def pytest_collection_modifyitems(self, config, items):
        keep = [item for i, item in enumerate(items) if i % self.total == self.index]
        drop = [item for i, item in enumerate(items) if i % self.total != self.index]
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep


def shard_plugins(environ) -> list:
    total = int(environ.get("TEST_TOTAL_SHARDS", "0") or 0)
    if total <= 1:
        return []
    status = environ.get("TEST_SHARD_STATUS_FILE")
    if status:  # tells Bazel this runner understands sharding
        with open(status, "w"):
            pass
    return [BazelShard(int(environ.get("TEST_SHARD_INDEX", "0")), total)]


def exit_code(code: int, environ) -> int:
    # A shard whose round robin selected nothing is a pass, not pytest's "no tests ran" (5).
    if code == pytest.ExitCode.NO_TESTS_COLLECTED and int(environ.get("TEST_TOTAL_SHARDS", "0") or 0) > 1:
        return 0
    return int(code)


if __name__ == "__main__":
    # Bazel runs one test per core; torch's OpenMP pool would put two spinning threads on each, and
    # under that oversubscription a small training loop ran 27x slower (40 s vs 1.5 s for 20 steps
    # of //tests:train_test at load 16). Subprocesses inherit it. A target can still set its own.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    test_file, extra = sys.argv[1], sys.argv[2:]
    # Bazel sets TEST_TMPDIR; keep pytest's cache out of the source tree.
    cache = os.environ.get("TEST_TMPDIR", "/tmp")
    code = pytest.main([test_file, "-q", "-p", "no:cacheprovider", "-o", f"cache_dir={cache}"] + extra,
                       plugins=shard_plugins(os.environ))
    sys.exit(exit_code(code, os.environ))
