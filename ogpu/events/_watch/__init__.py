"""The watchers users call, and the one seam the command, the demo and the kit open streams by."""
