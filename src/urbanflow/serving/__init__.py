"""The live service: reading store, forecasts on demand, HTTP API and map dashboard."""
