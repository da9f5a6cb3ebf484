"""Fine-tune the stance classifier: ``python scripts/train.py --config configs/default.yaml``."""

import sys
from collections.abc import Sequence

from negstance.train.cli import train_main


def main(argv: Sequence[str] | None = None) -> int:
    return train_main(argv)


if __name__ == "__main__":
    sys.exit(main())
