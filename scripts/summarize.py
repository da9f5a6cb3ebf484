"""Stance shares per group and period: ``python scripts/summarize.py --input P --output T``."""

import sys
from collections.abc import Sequence

from negstance.train.coverage import summarize_main


def main(argv: Sequence[str] | None = None) -> int:
    return summarize_main(argv)


if __name__ == "__main__":
    sys.exit(main())
