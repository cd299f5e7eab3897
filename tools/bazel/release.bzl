"""The release archive's inputs: every package contributes its files as :release_srcs.

`bazel build //:release_archive` packs them (tools/release_tar.py); a package without the
sattn_release_srcs() call would be missing from the archive, which //tools:release_test catches.
"""


# Caches and outputs that may sit in a working tree but are not sources.
RELEASE_EXCLUDES = [
    "**/__pycache__/**",
    "**/*.pyc",
    "**/.pytest_cache/**",
    "**/.hypothesis/**",
    "bazel-*",
    "bazel-*/**",
    ".git/**",
    ".gpuwheel/**",
    ".venv/**",
]

def sattn_release_srcs(name = "release_srcs", nested = []):
    """A filegroup of this package's files (subpackages contribute their own). `nested`: files of
    workspaces nested in this package (.bazelignore'd, so no glob reaches them)."""
    native.filegroup(
        name = name,
        srcs = native.glob(["**"], exclude = RELEASE_EXCLUDES) + nested,
        visibility = ["//:__pkg__"],
    )
