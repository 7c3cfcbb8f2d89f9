"""The Dockerfile front end: parser, shell-word expansion, .dockerignore.

Pure Python, no I/O and no service imports; the build service consumes it.
"""
