"""Unpause the ad groups named on the command line.

    WHOP_API_KEY=... python docs/examples/unpause_one.py adgrp_xxxxxxxxxxxx [...]

Exits 0 when every group was unpaused, 1 otherwise.
"""

import asyncio
import sys

import whop_async


async def unpause_all(ad_group_ids: list[str]) -> int:
    failures = 0
    async with whop_async.WhopClient() as client:
        for ad_group_id in ad_group_ids:
            try:
                group = await client.ad_groups.unpause(ad_group_id)
            except (whop_async.WhopError, ValueError) as error:
                failures += 1
                print(f"{ad_group_id}: not unpaused: {error}", file=sys.stderr)
            else:
                # Only id and status are in every shape Whop answers with.
                updated = f"{group.updated_at:%Y-%m-%d %H:%M %Z}" if group.updated_at else "?"
                print(f"{group.id}: {group.status} (updated {updated})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(unpause_all(sys.argv[1:])))
