"""`python -m mnq ...` is the same as the `mnq` console script (see mnq.cli)."""
import sys

from mnq.cli import main

if __name__ == "__main__":
    sys.exit(main())
