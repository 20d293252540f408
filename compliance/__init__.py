"""pgolf.compliance: reads record folders and submissions and judges them against the rules."""
