"""Grow the labelled data: ``python scripts/label.py suggest|annotate|agree|merge ...``."""

import sys
from collections.abc import Sequence

from negstance.train.cli import label_main


def main(argv: Sequence[str] | None = None) -> int:
    return label_main(argv)


if __name__ == "__main__":
    sys.exit(main())
