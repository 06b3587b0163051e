"""Where the daemon's events go: one small sink per destination, all with send(event) and close()."""
