"""Classify a file: ``python scripts/predict.py --model DIR --input FILE --output FILE``."""

import sys
from collections.abc import Sequence

from negstance.model.cli import predict_main


def main(argv: Sequence[str] | None = None) -> int:
    return predict_main(argv)


if __name__ == "__main__":
    sys.exit(main())
