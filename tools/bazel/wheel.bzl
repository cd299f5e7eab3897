"""sattn_wheel: an installable wheel whose metadata comes from pyproject.toml.

Name, version, dependencies, extras and the console script are pyproject.toml's (read by
tools/build_wheel.py); the file name's tags are the interpreter's the extensions were built
against (`python_tag`) and the toolchain's platform (@sattn_python//:defs.bzl).
"""

load("@sattn_python//:defs.bzl", "PLATFORM_TAG", "SATTN_VERSION")

def wheel_name(python_tag):
    return "sattn-%s-%s-%s-%s.whl" % (SATTN_VERSION, python_tag, python_tag, PLATFORM_TAG)

def sattn_wheel(name, python_tag, srcs, maps, exclude = [], **kwargs):
    """Wheel `sattn-<version>-<python_tag>-<python_tag>-<platform>.whl` of `srcs`.

    maps: {source path prefix: path prefix inside the wheel} (longest prefix wins), e.g.
    {"python/": "", "rvv/": "sattn/_rvv/"}.
    """
    out = wheel_name(python_tag)
    map_args = " ".join(["--map '%s=%s'" % (k, v) for k, v in sorted(maps.items())])
    exclude_args = " ".join(["--exclude '%s'" % x for x in exclude])
    native.genrule(
        name = name,
        srcs = srcs + ["//:pyproject.toml", "//:README.md"],
        outs = [out],
        cmd = ("$(location //tools:build_wheel) --out $@ --pyproject $(location //:pyproject.toml) " +
               "--readme $(location //:README.md) --python_tag %s %s %s " % (python_tag, map_args, exclude_args) +
               " ".join(["$(locations %s)" % s for s in srcs])),
        tools = ["//tools:build_wheel"],
        **kwargs
    )
