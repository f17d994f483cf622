"""`python -m qgoft_core train | inspect | bench`: see qgoft_core.cli."""
from qgoft_core.cli import main

raise SystemExit(main())
