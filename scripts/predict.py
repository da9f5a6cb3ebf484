"""Classify a file: ``python scripts/predict.py --model DIR --input FILE --output FILE``."""

import sys

from negstance.model.cli import predict_main as main

if __name__ == "__main__":
    sys.exit(main())
