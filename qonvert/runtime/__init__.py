"""Runtimes: ORT sessions, reference runners (source frameworks), comparison in LSB units."""
