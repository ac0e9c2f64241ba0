"""A small Discord bot whose /health slash command shows reliactl's health embed.

The seed's bot had `/health` and `/health detailed:True`; reliactl keeps the embed
(`reliactl.health.formats.discord_embed`, the same dict `reliactl health --format discord`
prints) and leaves the bot to you: this file is an example, discord.py is not a dependency
of reliactl.

    pip install reliactl discord.py
    DISCORD_TOKEN=... RELIACTL_CONFIG=/etc/reliactl/reliactl.yaml python bot.py

The checks run in a worker thread (they may take seconds), never on the bot's event loop.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any


def health_embed(detailed: bool = False) -> dict[str, Any]:
    """Run the configured checks once and return the embed as a dict (no Discord needed)."""
    from reliactl import HealthMonitor, get_reliability_config, open_state
    from reliactl.breaker import list_breakers
    from reliactl.health.formats import discord_embed
    from reliactl.hostname import hostname

    config = get_reliability_config()
    store = open_state(config)
    try:
        monitor = HealthMonitor(config.health_monitor, store=store, full_config=config)
        report = monitor.run_now()
        breakers = list_breakers(store, config) if detailed else None
        return discord_embed(report, detailed=detailed, breakers=breakers, host=hostname())
    finally:
        store.close()


def main() -> None:
    import discord
    from discord import app_commands

    client = discord.Client(intents=discord.Intents.default())
    tree = app_commands.CommandTree(client)

    @tree.command(name="health", description="System health from reliactl")
    @app_commands.describe(detailed="Add thresholds, circuit breakers and resource figures")
    async def health(interaction: discord.Interaction, detailed: bool = False) -> None:
        await interaction.response.defer(thinking=True)  # checks may take a few seconds
        embed = await asyncio.to_thread(health_embed, detailed)
        await interaction.followup.send(embed=discord.Embed.from_dict(embed))

    @client.event
    async def on_ready() -> None:
        await tree.sync()

    client.run(os.environ["DISCORD_TOKEN"])


if __name__ == "__main__":
    main()
