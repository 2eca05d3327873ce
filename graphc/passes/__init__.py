"""Compiler passes: each a function from Graph to Graph that can be run, printed and tested alone."""
