"""Small, deterministic stand-ins for the course's data sets, in the real formats (see :mod:`.datasets`)."""

from .datasets import standin_celeba, standin_cifar10, standin_cub, standin_unpaired

__all__ = ["standin_celeba", "standin_cifar10", "standin_cub", "standin_unpaired"]
