"""The bottom layer: typed settings, shared names, atomic file writes and the prediction log's format.

Every other package may import it; it imports none of them.
"""
