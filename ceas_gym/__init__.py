"""ceas-gym: entanglement-aware scheduling environments for distributed quantum neural networks.

Importing the package registers its environments with Gymnasium under the ``ceas_gym/`` namespace::

    import gymnasium as gym
    import ceas_gym  # noqa: F401

    env = gym.make("ceas_gym/EntanglementScheduling-Lite-v0")
"""

from ceas_gym.envs.registration import register_environments, registered_ids

__version__ = "0.1.0"

register_environments()

__all__ = ["__version__", "register_environments", "registered_ids"]
