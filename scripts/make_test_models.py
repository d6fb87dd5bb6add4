"""Generate the tiny random-weight test models (DistilBERT, GPT-2) into tests/models/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from tiny_models import make_all

if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "tests" / "models"
    for model_type, path in make_all(root).items():
        print(f"{model_type}: {path}")
