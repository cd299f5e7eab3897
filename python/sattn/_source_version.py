"""The version of an unbuilt source checkout, read from the pyproject.toml beside python/."""
from __future__ import annotations

import os
import re


def version_from_pyproject() -> str:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "pyproject.toml")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return "0+unknown"
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    m = project and re.search(r'^version\s*=\s*"([^"]+)"', project.group(1), re.M)
    return m.group(1) + "+source" if m else "0+unknown"
