"""Deep DealWithIt: put sunglasses on faces through a VAE's latent space.

Importing the package never downloads, trains or touches the disk.
"""

__version__ = "0.1.0"
