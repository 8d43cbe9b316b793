"""``python -m langprop`` — see ``langprop.trainer.cli``."""

import sys

from langprop.trainer.cli import main

if __name__ == "__main__":
    sys.exit(main())
