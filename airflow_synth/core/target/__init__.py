"""Target: copying a published synthetic dataset into a database (one transaction)."""
