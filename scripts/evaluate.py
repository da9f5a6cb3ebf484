"""Dev set and LODO CV: ``python scripts/evaluate.py --config configs/default.yaml``."""

import sys
from collections.abc import Sequence

from negstance.train.cli import evaluate_main


def main(argv: Sequence[str] | None = None) -> int:
    return evaluate_main(argv)


if __name__ == "__main__":
    sys.exit(main())
