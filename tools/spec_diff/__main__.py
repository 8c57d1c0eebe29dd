import sys

from tools.spec_diff.cli import main

sys.exit(main())
