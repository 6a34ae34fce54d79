"""The compacted state topic: what streamproc remembers across restarts and instances."""
