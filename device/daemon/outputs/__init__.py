"""Where the daemon's events go: one `Sink` per destination (see base.py for the contract)."""
