"""``python -m dealwithit``: see ``dealwithit.cli``."""

from dealwithit.cli import main

raise SystemExit(main())
