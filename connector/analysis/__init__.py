"""Analyses of what the engine computes: pure, values in and values out.

The commands render what these compute; nothing here reads a CRM or the store.
"""
