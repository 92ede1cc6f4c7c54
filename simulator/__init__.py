"""The hardware simulator: virtual devices speaking the real wire protocols, and scenarios."""
