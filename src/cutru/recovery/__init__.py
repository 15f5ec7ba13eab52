"""Recovery: tamper detection, rebuild of the projection from the journal, and (later)
point-in-time restore and surgical revert."""
