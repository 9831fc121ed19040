"""(being written) `lore slack --socket`."""
