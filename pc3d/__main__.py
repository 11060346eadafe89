"""`python -m pc3d`: the `pc3d` command (see `pc3d.cli`)."""

from pc3d.cli import main

raise SystemExit(main())
