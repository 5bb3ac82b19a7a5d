"""Alerts: rules over issued forecasts, their lifecycle, and webhooks (issue 9, §3)."""
