"""The runtime every scored lead goes through: the model artifact and its heads, tree
evaluation and contributions, reasons in words, batch scoring, loading from the registry."""
