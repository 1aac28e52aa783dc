"""Shipped, commented mappings of two public CRM exports (`leadscore import --mapping`)."""
