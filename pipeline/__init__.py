"""pgolf.pipeline: runs submissions under enforced caps and writes record folders."""
