"""Lore's Slack bot (docs/slack.md): one Bolt app, served at /slack/events by `lore serve` or over Socket Mode."""
