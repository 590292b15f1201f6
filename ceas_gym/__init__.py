"""ceas-gym: entanglement-aware scheduling environments for distributed quantum neural networks.

Importing the package registers its environments with Gymnasium under the ``ceas_gym/`` namespace::

    import gymnasium as gym
    import ceas_gym  # noqa: F401

    env = gym.make("ceas_gym/EntanglementScheduling-Lite-v0")
"""

from ceas_gym.envs.registration import register_environments, registered_ids
from ceas_gym.plugins import load_plugins

__version__ = "0.1.0"

register_environments()
load_plugins(on_error="warn")  # installed plug-ins (entry-point group "ceas_gym.envs"); see docs/plugins.md

__all__ = ["__version__", "register_environments", "registered_ids"]
