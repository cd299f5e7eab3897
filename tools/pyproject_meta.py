"""Reads pyproject.toml's [project] table and renders what a wheel carries from it.

pyproject.toml is the one source of sattn's metadata: the wheel's METADATA and entry_points.txt,
and sattn/_version.py (imported by `sattn.__version__`) are all rendered here from it.

    python tools/pyproject_meta.py version-module pyproject.toml > sattn/_version.py
"""
import argparse
import re
import sys
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as the tomli package (the sdist build asks for it)
    import tomli as tomllib

_REQUIRED = ("name", "version", "description", "requires-python", "dependencies")
# PEP 440 public versions (the subset sattn uses: N.N.N with an optional pre/post/dev suffix).
_VERSION = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")


class MetadataError(ValueError):
    """pyproject.toml lacks a field the wheel needs, or a field has the wrong form."""


def load(path: str) -> dict:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    project = data.get("project")
    if not isinstance(project, dict):
        raise MetadataError(f"{path}: no [project] table")
    for key in _REQUIRED:
        if key not in project:
            raise MetadataError(f"{path}: [project] lacks '{key}'")
    if not _VERSION.match(str(project["version"])):
        raise MetadataError(f"{path}: version {project['version']!r} is not a PEP 440 version")
    for key in ("dependencies",):
        if not all(isinstance(d, str) for d in project[key]):
            raise MetadataError(f"{path}: [project] {key} must be a list of strings")
    extras = project.get("optional-dependencies", {})
    for extra, reqs in extras.items():
        if not re.match(r"^[a-z0-9]+(-[a-z0-9]+)*$", extra):
            raise MetadataError(f"{path}: extra name {extra!r} is not normalised (lower case, '-')")
        if not all(isinstance(d, str) for d in reqs):
            raise MetadataError(f"{path}: optional-dependencies.{extra} must be a list of strings")
    return project


def metadata(project: dict, readme_text: str | None = None) -> str:
    """Core metadata 2.1 (the METADATA file of a wheel, PKG-INFO of an sdist)."""
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project['description']}",
        f"Requires-Python: {project['requires-python']}",
    ]
    lines += [f"Classifier: {c}" for c in project.get("classifiers", [])]
    lines += [f"Requires-Dist: {d}" for d in project["dependencies"]]
    for extra, reqs in sorted(project.get("optional-dependencies", {}).items()):
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {r}; extra == "{extra}"' for r in reqs]
    text = "\n".join(lines) + "\n"
    if readme_text is not None:
        text += "Description-Content-Type: text/markdown\n\n" + readme_text
    return text


def entry_points(project: dict) -> str:
    scripts = project.get("scripts", {})
    if not scripts:
        return ""
    return "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(scripts.items()))


def version_module(project: dict) -> str:
    return ('"""Generated from pyproject.toml by tools/pyproject_meta.py; do not edit."""\n'
            f'__version__ = "{project["version"]}"\n')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["version-module", "version", "metadata"])
    ap.add_argument("pyproject")
    args = ap.parse_args(argv)
    try:
        project = load(args.pyproject)
    except (OSError, MetadataError, tomllib.TOMLDecodeError) as e:
        sys.exit(f"pyproject_meta: {e}")
    out = {"version-module": version_module, "version": lambda p: p["version"] + "\n",
           "metadata": metadata}[args.what](project)
    sys.stdout.write(out)


if __name__ == "__main__":
    main()
