"""A decode task that kills its own process, for the cache test of a decoding process that dies (it must be
importable by spawned processes, hence a module of its own)."""
import os


def die(task):
    os._exit(137)
