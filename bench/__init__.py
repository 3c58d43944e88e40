"""The benchmark suite: `python -m bench` runs maildesk's real parts on loopback and prints one table."""
