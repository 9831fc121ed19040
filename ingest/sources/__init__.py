"""Where documents come from: a narrow Source seam (inventory + fetch) and its implementations."""
