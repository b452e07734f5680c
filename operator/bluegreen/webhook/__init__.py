"""The push-webhook receiver: provider rules (pure) and the aiohttp server."""
