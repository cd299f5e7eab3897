"""SATTN_TEST_SHARD="i/n" keeps every n-th collected test starting at i (0-based), so the GPU suite
(gpu/h100_suite.sh) can run one test file as n processes side by side: on real kernels the tests
spend their time compiling kernel variants, which is CPU work that parallelises across cores.
Without the variable nothing changes."""
import os


def pytest_collection_modifyitems(config, items):
    shard = os.environ.get("SATTN_TEST_SHARD", "")
    if not shard:
        return
    try:
        index, count = (int(x) for x in shard.split("/"))
    except ValueError:
        raise ValueError(f"SATTN_TEST_SHARD: expected 'i/n' with 0 <= i < n, got {shard!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"SATTN_TEST_SHARD: expected 'i/n' with 0 <= i < n, got {shard!r}")
    keep = [item for k, item in enumerate(items) if k % count == index]
    drop = [item for k, item in enumerate(items) if k % count != index]
    items[:] = keep
    config.hook.pytest_deselected(items=drop)
