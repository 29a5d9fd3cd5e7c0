"""Evidence the checks judge: measurements with a value, unit and entity, and the statistics over them."""
