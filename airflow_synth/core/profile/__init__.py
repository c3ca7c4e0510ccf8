"""Profiling before training: what each column is (its role and kind), decided once."""
