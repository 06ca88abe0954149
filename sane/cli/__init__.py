"""Thin click commands: parse, call the library, print one JSON document.

Each command imports the library lazily, inside its body: a one-shot call must not
pay for code it does not run.
"""
