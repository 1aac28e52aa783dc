"""What comes in: the data contract, the importer with its mappings, the simulator."""
