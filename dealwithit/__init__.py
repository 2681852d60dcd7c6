"""Deep DealWithIt: put sunglasses on faces through a VAE's latent space.

Importing the package never downloads, trains or touches the disk.
"""

import os

# TensorFlow's C++ log lines (grappler warnings, ...) bury our progress bars in
# terminals and notebooks; `--verbose` (DEALWITHIT_VERBOSE=1) keeps them, and a
# level the user set is left alone. Its import-time lines: see ``quiet``.
if os.environ.get("DEALWITHIT_VERBOSE", "") in ("", "0"):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
