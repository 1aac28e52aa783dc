"""The funnel report and the model card: pages, Markdown and charts rendered from what the
other packages compute (reports import scoring, features and crm, never training)."""
