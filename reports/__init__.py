"""The funnel report and model-card rendering."""
