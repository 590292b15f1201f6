"""``python -m ceas_gym [ID]``: list the registered environments, or print one environment's card."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import gymnasium as gym

from ceas_gym import registered_ids
from ceas_gym.cards import environment_card


def main(argv: Sequence[str] | None = None) -> int:
    """List every registered id (id, episode length, spaces, summary), or print the card of the id given."""
    parser = argparse.ArgumentParser(
        prog="python -m ceas_gym",
        description="List the ceas_gym environments, or print one environment's card (spaces, parameters, docs).",
    )
    parser.add_argument("env_id", nargs="?", help="an environment id, e.g. ceas_gym/EntanglementScheduling-Small-v0")
    args = parser.parse_args(argv)
    if args.env_id is not None:
        try:
            card = environment_card(args.env_id)
        except gym.error.Error as error:
            print(f"python -m ceas_gym: {error}", file=sys.stderr)
            return 2
        print(card.text(), end="")
        return 0
    print("| id | episode steps | action | observation | key parameters | description |")
    print("|---|---|---|---|---|---|")
    for env_id in registered_ids():
        print(environment_card(env_id).line())
    print("\nFull card: python -m ceas_gym <id>")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
