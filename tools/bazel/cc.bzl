"""Compiler flags every C++ target of sattn asks for itself, so a workspace that vendors sattn
needs no --cxxopt of its own (docs/build.md, "Vendoring")."""

# Rule copts come after --copt/--cxxopt on the command line: a monorepo's own -std does not reach
# sattn's sources. C sources (the C API's test, the RoCC driver) are in targets without these.
SATTN_CXXOPTS = ["-std=c++17"]
