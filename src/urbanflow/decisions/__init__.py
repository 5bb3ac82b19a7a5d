"""Decisions made from forecasts: fleet rebalancing (``rebalancing.py``) from the demand a
forecast implies (``demand.py``)."""
