"""Readers: files, archives and streams in, raw records out."""
