"""docs/api.md is what tools/api_docs.py generates from the current docstrings."""
import os

import api_docs


def test_docs_api_md_is_current():
    path = os.path.join(os.environ["TEST_SRCDIR"], "sattn", "docs", "api.md")
    with open(path) as f:
        current = f.read()
    assert current == api_docs.render(), "docs/api.md is stale: run `bazel run //tools:api_docs`"


def test_every_public_name_has_a_section():
    import sattn
    text = api_docs.render()
    for name in sattn.__all__:
        if name != "__version__":
            assert f"\n## {name}\n" in text, name
