"""Bindings of the ports to concrete technologies, one package per runtime."""
