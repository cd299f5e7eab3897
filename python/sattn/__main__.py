"""`python -m sattn`: the same command line as the `sattn` script (sattn.cli)."""
from sattn.cli import main

raise SystemExit(main())
