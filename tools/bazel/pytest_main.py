"""Entry point for sattn_py_test: runs pytest on the test file given as the first argument."""
import os
import sys

import pytest

if __name__ == "__main__":
    test_file, extra = sys.argv[1], sys.argv[2:]
    # Bazel sets TEST_TMPDIR; keep pytest's cache out of the source tree.
    cache = os.environ.get("TEST_TMPDIR", "/tmp")
    sys.exit(pytest.main([test_file, "-q", "-p", "no:cacheprovider", "-o", f"cache_dir={cache}"] + extra))
