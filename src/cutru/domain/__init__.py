"""Pure domain knowledge: fields, persons, households, residences, ID numbers, units, rules.

Nothing here knows about storage, HTTP or the command line.
"""
