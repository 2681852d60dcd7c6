"""Deep DealWithIt: put sunglasses on faces through a VAE's latent space.

Importing the package never downloads, trains or touches the disk.
"""

import os

# TensorFlow's C++ start-up chatter (oneDNN notes, grappler warnings) buries our
# progress bars in terminals and notebooks; users can still set their own level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
